"""laser-story: LLM-planned, attention-controlled animation (LASER), LLM-guided infinite canvases and
pronoun-aware consistent stories for ComfyUI.

Layers, from the bottom: ``controls`` (LASER's control-code table), ``llm`` (planning tasks and LLM
backends), ``attention`` (shared attention plumbing and per-pipeline policies), ``tinyworld`` (the built-in
model's runtime and world), ``training`` (the trainers' shared library). ``nodes`` sits on top and is the
only package that imports ComfyUI at import time; nothing imports ``nodes``.
"""
