"""LLM planning for laser-story: backends, the rule-based planner, plan schemas and validators.

Imports no ComfyUI. The node modules use ``planner.make_plan`` (text in, typed plan out) and
``plans.parse_plan`` (validate a pasted plan); everything else is reachable from there:

* ``plans``: the typed plans (morph, expand, story) and their validators.
* ``config`` / ``backends``: ``LLMConfig`` and the chat backends (OpenAI-compatible, Ollama, the pack's own
  llama.cpp server from ``llama_server``, transformers).
* ``structured``: schema-constrained calls with local validation, repair, retries and the disk ``cache``.
* ``tasks``: the per-task reply schemas, few-shot prompts and normalisers.
* ``rules`` / ``coref``: the rule-based planner (no model), the baseline every backend is scored against.
"""
