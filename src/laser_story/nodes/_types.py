"""The pack's own ComfyUI socket types, declared once: one plan type per planning task, so a graph that wires
a story plan into the Morph Interpolator is refused when it is queued, not when it runs."""

from __future__ import annotations

from ..llm.tasks import REGISTRY

LLM_CONFIG = "LASER_STORY_LLM_CONFIG"
PLAN = {name: f"LASER_STORY_{name.upper()}_PLAN" for name in REGISTRY}
STORY = "LASER_STORY_STORY"  # a story plan mapped into the model's input space (Story LLM Mapper -> Char-LDM Sampler)
CHAR_FUSER = "LASER_STORY_CHAR_FUSER"
