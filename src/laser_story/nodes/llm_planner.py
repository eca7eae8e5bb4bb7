"""LLM Prompt Planner node: text in, a validated plan out on the socket of its task (morph, expand or story)."""

from __future__ import annotations

import json
import logging
import os

import comfy.model_management
import comfy.utils
import folder_paths

from ..llm.backends import Sampling
from ..llm.config import LLMConfig
from ..llm.planner import PlanRequest, PlanResult, make_plan, text_problem
from ..llm.tasks import REGISTRY, TASKS, parse_plan
from ..llm.tasks.base import PlanError
from ..llm.tasks.expand import parse_directions
from ._types import LLM_CONFIG, PLAN
from .llm_config import CATEGORY, llm_model_dirs

logger = logging.getLogger("laser_story")

DEFAULT_DIRECTIONS = "left, right"
# Slot 0 carries the first task's plan and slot 1 the JSON, as before plans were typed, so saved graphs keep
# their links; each further task's plan follows (a new task appends a slot, the others keep theirs).
FIRST_TASK, *OTHER_TASKS = TASKS
OUTPUT_TASKS = (FIRST_TASK, None, *OTHER_TASKS)


def cache_dir() -> str:
    """``<user dir>/laser-story/llm-cache``; ``$LASER_STORY_LLM_CACHE`` overrides it (see ``llm.cache``)."""
    return os.path.join(folder_paths.get_user_directory(), "laser-story", "llm-cache")


def plan_in_node(request: PlanRequest, llm_config) -> PlanResult:
    """``make_plan`` as a node runs it: the node's progress bar, interruptible, the user directory's cache and the
    LLM model folders."""
    bar = comfy.utils.ProgressBar(1)

    def progress(done: int, total: int) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        bar.update_absolute(done, total)

    return make_plan(request, LLMConfig.from_json(llm_config), cache_dir=cache_dir(), models_dirs=llm_model_dirs(),
                     progress=progress)


class LaserStoryLLMPlanner:
    DESCRIPTION = (
        "Turns a description into a typed plan for the generation nodes. morph: keyframe prompts P0..Pn with one "
        "LASER control code per segment. expand: a global caption for the whole canvas and a local caption per "
        "expansion step. story: a character registry and one frame per sentence with every pronoun resolved to a "
        "character. Without an LLM Config the rule-based planner is used (no model). A plan pasted into "
        "plan_override is validated and used instead, so a shared workflow reproduces without any LLM. Replies "
        "are cached on disk: re-queuing the same inputs makes no LLM call."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = tuple("STRING" if task is None else PLAN[task] for task in OUTPUT_TASKS)
    RETURN_NAMES = tuple("plan_json" if task is None else f"{task}_plan" for task in OUTPUT_TASKS)
    OUTPUT_TOOLTIPS = tuple(
        "The plan as JSON text (paste it into plan_override to pin it)."
        if task is None
        else f"The {task} plan ({REGISTRY[task].description}), when task is {task!r}."
        for task in OUTPUT_TASKS
    )
    OUTPUT_NODE = True
    FUNCTION = "plan"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "task": (list(TASKS), {"default": FIRST_TASK,
                                       "tooltip": "; ".join(f"{name}: {task.description}" for name, task in
                                                            REGISTRY.items()) + ". The plan comes out on the "
                                                  "output of the same name."}),
                "text": ("STRING", {"multiline": True, "default": "",
                                    "tooltip": "morph: a coarse description ('a cat turns into a tiger, then "
                                               "jumps'); expand: the whole scene; story: the story, several "
                                               "sentences."}),
                "temperature": ("FLOAT", {"default": 0.2, "min": 0.0, "max": 2.0, "step": 0.05,
                                          "tooltip": "Sampling temperature (LLM backends); 0 = always the most "
                                                     "likely reply."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "control_after_generate": False,
                                 "tooltip": "Sampling seed, sent to backends that accept one; part of the cache "
                                            "key."}),
                "max_tokens": ("INT", {"default": 512, "min": 16, "max": 8192,
                                       "tooltip": "Longest reply per LLM call, in tokens."}),
            },
            "optional": {
                "llm_config": (LLM_CONFIG, {"tooltip": "From an LLM Config node; without it the rule-based "
                                                        "planner is used."}),
                "image_caption": ("STRING", {"multiline": True, "default": "",
                                             "tooltip": "morph: caption of the input image (becomes P0); expand: "
                                                        "caption of the starting image."}),
                "directions": ("STRING", {"default": DEFAULT_DIRECTIONS,
                                          "tooltip": "expand only: the side each step adds, e.g. 'left, right x2, "
                                                     "up' (left, right, up, down)."}),
                "plan_override": ("STRING", {"multiline": True, "default": "",
                                             "tooltip": "A plan as JSON (e.g. from plan_json, edited). When not "
                                                        "empty it is validated and used; no LLM is called."}),
                "caption": ("STRING", {"forceInput": True,
                                       "tooltip": "The input image's caption from a captioning node (e.g. Built-in "
                                                  "Image Caption, or any node with a text output); when connected it "
                                                  "is used as image_caption, so P0 describes the image itself."}),
            },
        }  # fmt: skip

    @classmethod
    def VALIDATE_INPUTS(cls, task=None, text=None, directions=None, plan_override=None):
        if task is not None and task not in TASKS:
            return f"task: {task!r} is not one of {', '.join(TASKS)}"
        override = (plan_override or "").strip()
        if override:
            try:
                parse_plan(override, "plan_override", task)
            except PlanError as exc:
                return str(exc)
            return True
        if text is not None and not text.strip():
            return f"text is empty: write the {task or 'plan'} description, or paste a plan into plan_override"
        if text is not None and text_problem(text):
            return text_problem(text)
        if task == "expand" and directions is not None:
            try:
                parse_directions(directions)
            except PlanError as exc:
                return str(exc)
        return True

    def plan(self, task, text, temperature, seed, max_tokens, llm_config=None, image_caption="",
             directions=DEFAULT_DIRECTIONS, plan_override="", caption=None):  # fmt: skip
        warnings: list[str] = []
        image_caption = caption.strip() if caption and caption.strip() else image_caption
        if plan_override.strip():
            plan = parse_plan(plan_override, "plan_override", task)
            source = "plan_override"
        else:
            request = PlanRequest(
                task=task,
                text=text,
                image_caption=image_caption,
                directions=parse_directions(directions) if task == "expand" else (),
                sampling=Sampling(temperature=temperature, seed=seed, max_tokens=max_tokens),
            )
            result = plan_in_node(request, llm_config)
            plan, source, warnings = result.plan, result.source, result.warnings
            source = f"{source} {result.stats.to_json()}"
        data = plan.to_json()
        text_out = json.dumps(data, indent=2, ensure_ascii=False)
        logger.info("laser-story: %s plan from %s", task, source)
        # The plan JSON is always the last entry; warnings (e.g. truncated text) come before it.
        # Every plan output carries the plan: one wired from the wrong task's output is refused by its node,
        # with the task named, instead of arriving empty.
        result = tuple(text_out if task is None else data for task in OUTPUT_TASKS)
        return {"ui": {"text": [*(f"WARNING: {w}" for w in warnings), text_out]}, "result": result}


NODE_CLASS_MAPPINGS = {"LaserStoryLLMPlanner": LaserStoryLLMPlanner}
NODE_DISPLAY_NAME_MAPPINGS = {"LaserStoryLLMPlanner": "LLM Prompt Planner"}
