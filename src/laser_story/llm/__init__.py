"""LLM planning for laser-story: backends, the planning tasks, their plans and validators.

Imports no ComfyUI. The node modules use ``planner.make_plan`` (text in, typed plan out) and
``tasks.parse_plan`` (validate a pasted plan); everything else is reachable from there:

* ``tasks``: one module per planning task (``morph``, ``expand``, ``story``), each owning its plan
  dataclass, parser, reply schema, prompt, normaliser and rule-based planner, registered in
  ``tasks.REGISTRY``.
* ``config`` / ``backends``: ``LLMConfig`` and the chat backends (OpenAI-compatible, Ollama, the pack's own
  llama.cpp server from ``llama_server``, transformers).
* ``structured``: schema-constrained calls with local validation, repair, retries and the disk ``cache``.
* ``coref`` / ``language`` / ``lexicon``: the story task's rule-based resolver and the English it reads.
"""
