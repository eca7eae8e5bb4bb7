"""Typed plans that flow between the planner and the generation nodes, with their validators.

A plan travels through a ComfyUI graph as a plain JSON-compatible dict (``MorphPlan.to_json()``), so it
survives caching, deep copies and saved workflows; nodes turn it back into a dataclass with the
``parse_*`` functions, which name the offending field in every error.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

CONTROL_CODES = ("0", "1", "2", "3")
CONTROL_MEANINGS = {
    "0": "texture/appearance change (Plug-and-Play conv + self-attention Q/K injection in early steps)",
    "1": "non-rigid action or pose change (MasaCtrl K/V injection after a start step)",
    "2": "mixed change (both controls, interpolation capped at 0.8)",
    "3": "keep the previous segment's control",
}


class PlanError(ValueError):
    """A plan that does not fit its schema; the message names the field and what was expected."""


@dataclasses.dataclass(frozen=True)
class MorphPlan:
    """LASER plan: keyframe prompts P0..Pn and one control code per segment Pi -> Pi+1."""

    prompts: tuple[str, ...]
    controls: tuple[str, ...]
    negative: str = ""
    frames_per_segment: int = 8

    @property
    def segments(self) -> int:
        return len(self.prompts) - 1

    def to_json(self) -> dict[str, Any]:
        return {
            "task": "morph",
            "prompts": list(self.prompts),
            "controls": list(self.controls),
            "negative": self.negative,
            "frames_per_segment": self.frames_per_segment,
        }


def load_json_object(data: dict[str, Any] | str, what: str) -> dict[str, Any]:
    """Accept a dict or JSON text; anything else is a PlanError naming ``what``."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise PlanError(f"{what} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from exc
    if not isinstance(data, dict):
        raise PlanError(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


def parse_morph_plan(data: dict[str, Any] | str, what: str = "morph plan") -> MorphPlan:
    """Validate and normalise a morph plan (dict or JSON text)."""
    obj = load_json_object(data, what)
    task = obj.get("task", "morph")
    if task != "morph":
        raise PlanError(f"{what}: field 'task' is {task!r}, expected 'morph' (this plan came from the {task!r} task)")
    prompts = obj.get("prompts")
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise PlanError(f"{what}: field 'prompts' must be a list of keyframe prompt strings P0..Pn")
    prompts = [p.strip() for p in prompts]
    if len(prompts) < 2:
        raise PlanError(f"{what}: field 'prompts' needs at least 2 keyframe prompts (P0 and P1), got {len(prompts)}")
    empty = [i for i, p in enumerate(prompts) if not p]
    if empty:
        raise PlanError(f"{what}: field 'prompts' has an empty prompt at position {empty[0]}")
    controls = obj.get("controls")
    if not isinstance(controls, list):
        raise PlanError(f"{what}: field 'controls' must be a list of control codes, one per segment")
    controls = [str(c).strip() for c in controls]
    if len(controls) != len(prompts) - 1:
        raise PlanError(
            f"{what}: field 'controls' has {len(controls)} codes but the {len(prompts)} prompts make "
            f"{len(prompts) - 1} segments; give exactly one code per segment"
        )
    bad = [c for c in controls if c not in CONTROL_CODES]
    if bad:
        raise PlanError(f"{what}: field 'controls' has {bad[0]!r}; each code must be one of {', '.join(CONTROL_CODES)}")
    if controls[0] == "3":
        raise PlanError(f"{what}: field 'controls' starts with '3' (keep previous) but there is no previous control")
    negative = obj.get("negative", "")
    if not isinstance(negative, str):
        raise PlanError(f"{what}: field 'negative' must be a string")
    frames = obj.get("frames_per_segment", 8)
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 2:
        raise PlanError(f"{what}: field 'frames_per_segment' must be an integer of at least 2, got {frames!r}")
    return MorphPlan(tuple(prompts), tuple(controls), negative.strip(), frames)


TASKS = ("morph", "expand", "story")
DIRECTIONS = ("left", "right", "up", "down")


def _string(obj: dict[str, Any], key: str, what: str, *, required: bool = True, default: str = "") -> str:
    value = obj.get(key, None if required else default)
    if not isinstance(value, str) or (required and not value.strip()):
        raise PlanError(
            f"{what}: field '{key}' must be a non-empty string"
            if required
            else f"{what}: field '{key}' must be a string"
        )
    return value.strip()


def _list(obj: dict[str, Any], key: str, what: str, *, min_items: int = 0) -> list[Any]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise PlanError(f"{what}: field '{key}' must be a list")
    if len(value) < min_items:
        raise PlanError(f"{what}: field '{key}' needs at least {min_items} item(s), got {len(value)}")
    return value


def _check_task(obj: dict[str, Any], task: str, what: str) -> None:
    found = obj.get("task", task)
    if found != task:
        raise PlanError(
            f"{what}: field 'task' is {found!r}, expected {task!r} (this plan came from the {found!r} task)"
        )


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


def parse_expand_plan(data: dict[str, Any] | str, what: str = "expand plan") -> ExpandPlan:
    """Validate and normalise an expansion plan (dict or JSON text)."""
    obj = load_json_object(data, what)
    _check_task(obj, "expand", what)
    global_caption = _string(obj, "global_caption", what)
    initial = _string(obj, "initial_caption", what, required=False)
    steps = []
    for i, step in enumerate(_list(obj, "steps", what, min_items=1)):
        where = f"{what}: steps[{i}]"
        if not isinstance(step, dict):
            raise PlanError(f"{where} must be an object with 'direction' and 'caption'")
        direction = step.get("direction")
        if direction not in DIRECTIONS:
            raise PlanError(f"{where}: field 'direction' is {direction!r}; expected one of {', '.join(DIRECTIONS)}")
        steps.append(ExpandStep(direction, _string(step, "caption", where)))
    return ExpandPlan(global_caption, tuple(steps), initial)


@dataclasses.dataclass(frozen=True)
class Character:
    """A registry entry: the name frames use, how the character always looks, an optional reference image."""

    name: str
    description: str
    reference_image: int | None = None


@dataclasses.dataclass(frozen=True)
class Reference:
    """A pronoun or vague reference in a sentence and the registry names it stands for."""

    mention: str
    refers_to: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Frame:
    """One sentence of the story as a picture: the resolved text, who is in it, and where."""

    sentence: str
    text: str
    characters: tuple[str, ...]
    setting: str
    references: tuple[Reference, ...] = ()


@dataclasses.dataclass(frozen=True)
class StoryPlan:
    """Story plan (StoryGPT-V): a character registry and one frame per sentence with references resolved."""

    characters: tuple[Character, ...]
    frames: tuple[Frame, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "task": "story",
            "characters": [
                {"name": c.name, "description": c.description, "reference_image": c.reference_image}
                for c in self.characters
            ],
            "frames": [
                {
                    "sentence": f.sentence,
                    "text": f.text,
                    "characters": list(f.characters),
                    "setting": f.setting,
                    "references": [{"mention": r.mention, "refers_to": list(r.refers_to)} for r in f.references],
                }
                for f in self.frames
            ],
        }


def _names(value: Any, where: str, known: dict[str, str], *, min_items: int = 0) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise PlanError(f"{where} must be a list of character names")
    if len(value) < min_items:
        raise PlanError(f"{where} needs at least {min_items} character name(s)")
    unknown = [n for n in value if n.strip().lower() not in known]
    if unknown:
        raise PlanError(
            f"{where} names {unknown[0]!r}, which is not in 'characters'; use one of {sorted(known.values())}"
        )
    return tuple(known[n.strip().lower()] for n in value)


def parse_story_plan(data: dict[str, Any] | str, what: str = "story plan") -> StoryPlan:
    """Validate and normalise a story plan (dict or JSON text); every name must be in the registry."""
    obj = load_json_object(data, what)
    _check_task(obj, "story", what)
    characters, known = [], {}
    for i, entry in enumerate(_list(obj, "characters", what)):
        where = f"{what}: characters[{i}]"
        if not isinstance(entry, dict):
            raise PlanError(f"{where} must be an object with 'name' and 'description'")
        name = _string(entry, "name", where)
        if name.lower() in known:
            raise PlanError(f"{where}: field 'name' repeats {name!r}; names must be unique")
        ref = entry.get("reference_image")
        if ref is not None and (not isinstance(ref, int) or isinstance(ref, bool) or ref < 0):
            raise PlanError(f"{where}: field 'reference_image' must be null or an image index >= 0, got {ref!r}")
        known[name.lower()] = name
        characters.append(Character(name, _string(entry, "description", where), ref))
    frames = []
    for i, entry in enumerate(_list(obj, "frames", what, min_items=1)):
        where = f"{what}: frames[{i}]"
        if not isinstance(entry, dict):
            raise PlanError(f"{where} must be an object with 'sentence', 'text', 'characters' and 'setting'")
        refs = []
        for j, ref in enumerate(entry.get("references", [])):
            if not isinstance(ref, dict):
                raise PlanError(f"{where}: references[{j}] must be an object with 'mention' and 'refers_to'")
            mention = _string(ref, "mention", f"{where}: references[{j}]")
            targets = _names(ref.get("refers_to"), f"{where}: references[{j}].refers_to", known, min_items=1)
            refs.append(Reference(mention, targets))
        frames.append(
            Frame(
                sentence=_string(entry, "sentence", where),
                text=_string(entry, "text", where),
                characters=_names(entry.get("characters", []), f"{where}: field 'characters'", known),
                setting=_string(entry, "setting", where, required=False),
                references=tuple(refs),
            )
        )
    return StoryPlan(tuple(characters), tuple(frames))


Plan = MorphPlan | ExpandPlan | StoryPlan
PARSERS = {"morph": parse_morph_plan, "expand": parse_expand_plan, "story": parse_story_plan}


def parse_plan(data: dict[str, Any] | str, what: str = "plan", task: str | None = None) -> Plan:
    """Validate any plan; ``task`` (when given) is the task the plan must belong to, and the default."""
    obj = load_json_object(data, what)
    found = obj.get("task", task)
    if found not in PARSERS:
        raise PlanError(f"{what}: field 'task' is {found!r}; expected one of {', '.join(TASKS)}")
    if task is not None and found != task:
        raise PlanError(f"{what}: field 'task' is {found!r} but this node plans {task!r}; change one of them")
    return PARSERS[found]({**obj, "task": found}, what)
