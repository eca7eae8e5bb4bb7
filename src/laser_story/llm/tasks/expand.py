"""The expand task (infinite canvas, arXiv 2407.12642): one global caption and a local caption per step.

Owns the plan (``ExpandPlan``, ``parse_expand_plan``), the two LLM reply schemas and prompts (the global
caption, then each next local caption written given the global caption and the captions so far), and the
rule-based planner (the global caption's parts handed out to the steps in order).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from .base import (
    Call,
    Messages,
    PlanError,
    Request,
    Task,
    check_task,
    few_shot,
    list_field,
    load_json_object,
    string_field,
)

DIRECTIONS = ("left", "right", "up", "down")
DIRECTION_WORDS = {
    **{d: d for d in DIRECTIONS},
    "top": "up", "above": "up", "upward": "up", "upwards": "up", "north": "up",
    "bottom": "down", "below": "down", "downward": "down", "downwards": "down", "south": "down",
    "east": "right", "west": "left",
}  # fmt: skip
MAX_STEPS = 32


@dataclasses.dataclass(frozen=True)
class ExpandStep:
    """One outpainting step: the side the canvas grows on and the local caption of the new region."""

    direction: str
    caption: str


@dataclasses.dataclass(frozen=True)
class ExpandPlan:
    """Expansion captions (2407.12642): one global caption for the whole canvas and a local caption per step."""

    global_caption: str
    steps: tuple[ExpandStep, ...]
    initial_caption: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "task": "expand",
            "global_caption": self.global_caption,
            "initial_caption": self.initial_caption,
            "steps": [{"direction": s.direction, "caption": s.caption} for s in self.steps],
        }


PLAN_FIELDS = ("task", "global_caption", "initial_caption", "steps")
STEP_FIELDS = ("direction", "caption")


def _no_unknown_fields(obj: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(str(k) for k in obj if k not in known)
    if unknown:
        raise PlanError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; the fields are {', '.join(known)}")


def parse_expand_plan(data: dict[str, Any] | str, what: str = "expand plan") -> ExpandPlan:
    """Validate and normalise an expansion plan (dict or JSON text)."""
    obj = load_json_object(data, what)
    check_task(obj, "expand", what)
    _no_unknown_fields(obj, PLAN_FIELDS, what)
    global_caption = string_field(obj, "global_caption", what)
    initial = string_field(obj, "initial_caption", what, required=False)
    steps = []
    for i, step in enumerate(list_field(obj, "steps", what, min_items=1)):
        where = f"{what}: steps[{i}]"
        if not isinstance(step, dict):
            raise PlanError(f"{where} must be an object with 'direction' and 'caption'")
        _no_unknown_fields(step, STEP_FIELDS, where)
        direction = step.get("direction")
        if direction not in DIRECTIONS:
            raise PlanError(f"{where}: field 'direction' is {direction!r}; expected one of {', '.join(DIRECTIONS)}")
        steps.append(ExpandStep(direction, string_field(step, "caption", where)))
    return ExpandPlan(global_caption, tuple(steps), initial)


# --- LLM replies -------------------------------------------------------------------------------------
GLOBAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"global_caption": {"type": "string", "minLength": 1, "maxLength": 200}},
    "required": ["global_caption"],
    "additionalProperties": False,
}
LOCAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"caption": {"type": "string", "minLength": 1, "maxLength": 160}},
    "required": ["caption"],
    "additionalProperties": False,
}
GLOBAL_INSTRUCTIONS = (
    "An image will be expanded step by step into a wide picture. Write one global caption, a single sentence, "
    "that describes the whole picture. Answer with JSON only."
)
GLOBAL_EXAMPLE = (
    "Scene: a beach with children playing and a dog\nThe starting image shows: two kids building a sandcastle",
    {
        "global_caption": "a sunny beach with children playing in the sand, a dog running and people strolling by the sea"
    },
)
LOCAL_INSTRUCTIONS = (
    "An image is expanded step by step. Given the global caption, the captions of the regions so far and the side "
    "the new region is added on, write the caption of the new region only: what is there, consistent with the "
    "global caption, without repeating what is already shown. Answer with JSON only."
)
LOCAL_EXAMPLE = (
    "Global caption: a sunny beach with children playing, a dog and people strolling by the sea\n"
    "Regions so far: two kids building a sandcastle\nNew region: right",
    {"caption": "a brown dog running along the wet sand by the waves"},
)


TUNED_GLOBAL = "Write the global caption. JSON only."
TUNED_LOCAL = "Write the new region's caption. JSON only."


def global_messages(text: str, image_caption: str = "") -> Messages:
    user = f"Scene: {text}" + (f"\nThe starting image shows: {image_caption}" if image_caption else "")
    return few_shot(GLOBAL_INSTRUCTIONS, GLOBAL_EXAMPLE, user)


def local_messages(global_caption: str, direction: str, captions_so_far: list[str]) -> Messages:
    so_far = "; ".join(captions_so_far) if captions_so_far else "(none yet)"
    user = f"Global caption: {global_caption}\nRegions so far: {so_far}\nNew region: {direction}"
    return few_shot(LOCAL_INSTRUCTIONS, LOCAL_EXAMPLE, user)


def normalise_caption(key: str):
    """Normaliser for a one-caption reply: whitespace folded, and never empty."""

    def normalise(obj: dict[str, Any]) -> tuple[str, list[str]]:
        caption = " ".join(obj[key].split()).strip(" .")
        if not caption:
            raise PlanError(f"field '{key}' is empty")
        return caption, []

    return normalise


def plan_llm(request: Request, call: Call) -> ExpandPlan:
    """The global caption first, then each step's local caption given the global caption and those so far."""
    global_caption = call(
        global_messages(request.text or request.image_caption, request.image_caption),
        GLOBAL_SCHEMA,
        normalise_caption("global_caption"),
        "expand (global caption)",
        TUNED_GLOBAL,
    )
    so_far = [request.image_caption.strip()] if request.image_caption.strip() else []
    steps = []
    for direction in request.directions:
        caption = call(
            local_messages(global_caption, direction, so_far),
            LOCAL_SCHEMA,
            normalise_caption("caption"),
            f"expand (local caption, {direction})",
            TUNED_LOCAL,
        )
        so_far.append(caption)
        steps.append(ExpandStep(direction, caption))
    return ExpandPlan(global_caption, tuple(steps), request.image_caption.strip())


# --- rule-based planner ------------------------------------------------------------------------------
def parse_directions(text: str) -> tuple[str, ...]:
    """ "right x2, up" -> ("right", "right", "up"); the error names the ``directions`` input."""
    steps: list[str] = []
    for token in re.split(r"[\s,;]+", text.strip().lower()):
        if not token:
            continue
        repeat = re.fullmatch(r"(?:x|\*)(\d+)|(\d+)x", token)
        if repeat:
            if not steps:
                raise PlanError(f"directions: {token!r} repeats nothing; write it after a direction, e.g. 'right x3'")
            steps.extend([steps[-1]] * (int(repeat.group(1) or repeat.group(2)) - 1))
            continue
        if token not in DIRECTION_WORDS:
            raise PlanError(
                f"directions: {token!r} is not a direction; use left, right, up or down (e.g. 'right x2, up')"
            )
        steps.append(DIRECTION_WORDS[token])
    if not steps:
        raise PlanError("directions: give at least one of left, right, up, down (e.g. 'left, right')")
    if len(steps) > MAX_STEPS:
        raise PlanError(f"directions: {len(steps)} steps is more than {MAX_STEPS}; expand in several runs")
    return tuple(steps)


def _elements(caption: str) -> list[str]:
    parts = re.split(
        r"\s*(?:,|;|\band\b|\bwith\b|\bwhere\b|\bwhile\b|\bnext to\b|\bnear\b)\s*", caption.strip(" ."), flags=re.I
    )
    return [p for p in (p.strip() for p in parts) if p and p.lower() not in ("a", "an", "the")]


def local_caption(global_caption: str, direction: str, captions_so_far: list[str]) -> str:
    """The next region's caption: the next part of the global caption not yet shown, placed on ``direction``."""
    elements = _elements(global_caption) or [global_caption.strip(" .")]
    scene, parts = elements[0], elements[1:]
    shown = " ".join(captions_so_far).lower()
    unused = [p for p in parts if p.lower() not in shown]
    where = {
        "left": f"the left side of {scene}",
        "right": f"the right side of {scene}",
        "up": f"the sky and upper part of {scene}",
        "down": f"the ground and lower part of {scene}",
    }[direction]
    if unused:
        return f"{unused[0]}, {where}"
    step = sum(1 for c in captions_so_far if where in c)
    return f"more of {where}" + (f", continued ({step + 1})" if step else "")


def plan_expand(text: str, directions: tuple[str, ...], image_caption: str = "") -> ExpandPlan:
    """A global caption for the whole canvas and one local caption per step, from pattern rules."""
    global_caption = " ".join(text.split()).strip(" .") or image_caption.strip(" .")
    if not global_caption:
        raise PlanError("text: describe the whole scene to expand into (or give image_caption)")
    captions = [image_caption.strip()] if image_caption.strip() else []
    steps = []
    for direction in directions:
        caption = local_caption(global_caption, direction, captions)
        captions.append(caption)
        steps.append(ExpandStep(direction, caption))
    return ExpandPlan(global_caption, tuple(steps), image_caption.strip())


TASK = Task(
    name="expand",
    version=1,
    description="outpainting captions",
    parse=parse_expand_plan,
    plan_rules=lambda request: plan_expand(request.text, request.directions, request.image_caption),
    plan_llm=plan_llm,
    prompt_overhead=lambda request: global_messages("", request.image_caption),
    llm_calls=lambda request: 1 + len(request.directions),
    caption_is_text=True,
)
