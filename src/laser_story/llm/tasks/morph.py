"""The morph task (LASER): keyframe prompts P0..Pn and one control code per segment.

Owns the plan (``MorphPlan``, ``parse_morph_plan``), the LLM reply schema, prompt and normaliser, and the
rule-based planner (pattern rules: "a cat turns into a tiger, then jumps" -> three keyframes, codes 0 and 1).
What each control code means lives in ``laser_story.controls``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from ... import controls as codes
from ..caption_edit import edit_caption
from ..lexicon import ACTION_VERBS, BECOME_VERBS, TRANSFORM_VERBS
from .base import Call, Messages, PlanError, Request, Task, check_task, few_shot, load_json_object

DEFAULT_NEGATIVE = "blurry, low quality, distorted, deformed, disfigured, extra limbs, watermark, text"
DEFAULT_FRAMES = 8
MAX_FRAMES = 64


@dataclasses.dataclass(frozen=True)
class MorphPlan:
    """LASER plan: keyframe prompts P0..Pn and one control code per segment Pi -> Pi+1."""

    prompts: tuple[str, ...]
    controls: tuple[str, ...]
    negative: str = ""
    frames_per_segment: int = DEFAULT_FRAMES

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


def parse_morph_plan(data: dict[str, Any] | str, what: str = "morph plan") -> MorphPlan:
    """Validate and normalise a morph plan (dict or JSON text)."""
    obj = load_json_object(data, what)
    check_task(obj, "morph", what)
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
    problem = codes.problem(controls)
    if problem:
        raise PlanError(f"{what}: field 'controls' {problem}")
    negative = obj.get("negative", "")
    if not isinstance(negative, str):
        raise PlanError(f"{what}: field 'negative' must be a string")
    frames = obj.get("frames_per_segment", DEFAULT_FRAMES)
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 2:
        raise PlanError(f"{what}: field 'frames_per_segment' must be an integer of at least 2, got {frames!r}")
    return MorphPlan(tuple(prompts), tuple(controls), negative.strip(), frames)


def typed_plan(prompts: str, controls: str, negative: str, frames: int) -> MorphPlan:
    """A plan from the Morph Interpolator's text inputs: one keyframe prompt per line, codes comma separated
    (none: ``controls.default_codes``); errors name the ``prompts/controls`` inputs."""
    lines = [line.strip() for line in prompts.splitlines() if line.strip()]
    given = [c.strip() for c in controls.replace(";", ",").split(",") if c.strip()]
    if lines and not given:
        given = codes.default_codes(len(lines) - 1)
    return parse_morph_plan({"prompts": lines, "controls": given, "negative": negative, "frames_per_segment": frames},
                            what="prompts/controls")


# --- LLM reply ---------------------------------------------------------------------------------------
REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "prompts": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 100},
            "minItems": 2,
            "maxItems": 6,
        },
        "controls": {
            "type": "array",
            "items": {"type": "string", "enum": list(codes.CODES)},
            "minItems": 1,
            "maxItems": 5,
        },
        "negative": {"type": "string", "maxLength": 100},
        "frames_per_segment": {"type": "integer", "minimum": 2, "maximum": MAX_FRAMES},
    },
    "required": ["prompts", "controls", "negative", "frames_per_segment"],
    "additionalProperties": False,
}
INSTRUCTIONS = (
    "Plan a morphing animation. Turn the description into keyframe image prompts P0..Pn (P0 is the start) and "
    'give one control code per pair of neighbouring keyframes: "0" the look or texture changes, "1" the pose or '
    'action changes, "2" both change, "3" keep the previous code. Add a negative prompt and frames_per_segment. '
    "Answer with JSON only."
)
EXAMPLE = (
    "Description: a cat turns into a tiger, then the tiger jumps",
    {
        "prompts": ["a photo of a cat", "a photo of a tiger", "a photo of a tiger jumping"],
        "controls": ["0", "1"],
        "negative": "blurry, low quality",
        "frames_per_segment": 8,
    },
)


TUNED_INSTRUCTION = "Plan the morph keyframes and control codes. JSON only."


def messages(text: str, image_caption: str = "") -> Messages:
    user = f"Description: {text}"
    if image_caption:
        user += f"\nP0 must be the input image: {image_caption}"
    return few_shot(INSTRUCTIONS, EXAMPLE, user)


def normalise_reply(obj: dict[str, Any], image_caption: str = "") -> tuple[MorphPlan, list[str]]:
    """Make a schema-valid morph reply a valid ``MorphPlan``: P0 is the caption, one code per segment."""
    notes = []
    prompts = [p.strip() for p in obj["prompts"] if p.strip()]
    if len(prompts) != len(obj["prompts"]):
        notes.append("dropped empty prompts")
    if image_caption:
        prompts[:1] = [image_caption.strip()]
    controls, fixed = codes.fit(obj["controls"], len(prompts) - 1)
    plan = parse_morph_plan({**obj, "prompts": prompts, "controls": controls}, "morph reply")
    return plan, notes + fixed


def plan_llm(request: Request, call: Call) -> MorphPlan:
    return call(
        messages(request.text, request.image_caption),
        REPLY_SCHEMA,
        lambda obj: normalise_reply(obj, request.image_caption),
        "morph",
        TUNED_INSTRUCTION,
    )


# --- rule-based planner ------------------------------------------------------------------------------
STAGE_SPLIT = re.compile(
    r"\s*(?:->|→|=>|;|,?\s*\band then\b|,?\s*\bthen\b|,?\s*\bafter that\b|,?\s*\bfinally\b)\s*", re.I
)
FRAMES = re.compile(
    r",?\s*(?:with\s+|in\s+|over\s+)?(\d+)\s*frames?(?:\s+(?:per|each|a)\s+(?:segment|step|transition))?", re.I
)
# "becomes X" and "morphs into X" always change the look; "turns X" only with "into" ("turns his head" is a pose).
TRANSFORM = re.compile(
    r"^(?P<a>.*?)\s*\b(?:(?:" + "|".join(sorted(BECOME_VERBS, key=len, reverse=True)) + r")\b(?:\s+into\b)?"
    r"|(?:" + "|".join(sorted(TRANSFORM_VERBS, key=len, reverse=True)) + r")\s+(?:into|to)\b)\s*(?P<b>.*)$",
    re.I,
)
SUBJECT = re.compile(
    r"^(?:(?:it|he|she|they)\b|(?:the|a|an|this|that)\s+(?:[a-z-]+\s+){0,2}?[a-z-]+?(?=\s+\w+s\b))\s*", re.I
)
PRONOUNS = {"it", "he", "she", "they"}
ADVERBS = r"(?:\s+(?:slowly|quickly|gradually|suddenly|gently|smoothly|rapidly|softly|finally|then))+"
# "..., then into a dragon": the stage continues the previous change, so "into" goes too
FILLER = re.compile(r"^(?:and|but|so|slowly|quickly|suddenly|gradually|finally|then|into)\b\s*", re.I)


def base_form(verb: str) -> str:
    """ "jumps" -> "jump", "flies" -> "fly", "watches" -> "watch"."""
    verb = verb.lower()
    if verb.endswith("ies") and len(verb) > 4:
        return verb[:-3] + "y"
    if verb.endswith(("ches", "shes", "sses", "xes", "zzes", "oes")):
        return verb[:-2]
    if verb.endswith("s") and not verb.endswith("ss"):
        return verb[:-1]
    return verb


def gerund(base: str) -> str:
    """ "run" -> "running", "dance" -> "dancing", "lie" -> "lying", "jump" -> "jumping"."""
    if base.endswith("ie"):
        return base[:-2] + "ying"
    if base.endswith("e") and not base.endswith(("ee", "ye", "oe")):
        return base[:-1] + "ing"
    if re.fullmatch(r"[^aeiou]*[aeiou][bdgmnprt]", base):
        return base + base[-1] + "ing"
    return base + "ing"


def _action(stage: str) -> tuple[str, str] | None:
    """("the dog", "jumping over the fence") for "the dog jumps over the fence"; None when it is no action."""
    match = SUBJECT.match(stage)
    subject = match.group().strip() if match else ""
    rest = stage[match.end() :] if match else stage
    parts = rest.split(maxsplit=1)
    if not parts:
        return None
    verb, tail = parts[0].lower(), parts[1] if len(parts) > 1 else ""
    if verb in ("starts", "begins", "start", "begin"):
        inner = tail.removeprefix("to ").split(maxsplit=1)
        if not inner:
            return None
        verb, tail = inner[0].lower(), inner[1] if len(inner) > 1 else ""
    base = base_form(verb) if not verb.endswith("ing") else verb
    if base.endswith("ing") and any(gerund(v) == base for v in ACTION_VERBS):
        return subject, f"{base} {tail}".strip()
    if base in ACTION_VERBS:
        return subject, f"{gerund(base)} {tail}".strip()
    return None


def _split_participle(phrase: str) -> tuple[str, str]:
    """ "a dog sitting on a rug" -> ("a dog", "sitting on a rug"): pose words belong to the action."""
    tokens = phrase.split()
    for i, token in enumerate(tokens[1:], start=1):
        if token.lower().endswith("ing") and any(gerund(v) == token.lower() for v in ACTION_VERBS):
            return " ".join(tokens[:i]).rstrip(","), " ".join(tokens[i:])
    return phrase, ""


def _clean(stage: str) -> str:
    stage = re.sub(ADVERBS + "$", "", stage.strip(" ,.!"), flags=re.I)  # "a young woman slowly (ages ...)"
    while FILLER.match(stage):
        stage = FILLER.sub("", stage, count=1)
    return stage


def _stages(text: str) -> list[str]:
    parts = [_clean(p) for p in STAGE_SPLIT.split(text)]
    stages = []
    for part in parts:
        # "summer forest to winter forest": a bare "X to Y" chain of scenes with no verb in it
        pieces = re.split(r"\s+to\s+", re.sub(r"^from\s+", "", part, flags=re.I))
        verbless = all(not TRANSFORM.match(p) and _action(p) is None for p in pieces)
        stages.extend([_clean(p) for p in pieces] if len(pieces) > 1 and verbless else [part])
    split: list[str] = []
    for stage in stages:  # "... into a butterfly and flies away": the action after "and" is a stage of its own
        pieces = re.split(r"\s+and\s+", stage)
        split.append(pieces[0])
        for piece in pieces[1:]:
            if _action(piece) is not None:
                split.append(piece)
            else:
                split[-1] += " and " + piece
    return [s for s in split if s]


def _prompt(subject: str, action: str) -> str:
    return f"{subject}, {action}" if action else subject


def _edit_chain(caption: str, stages: list[str], frames: int) -> MorphPlan | None:
    """Each stage applied to the caption before it ("the star turns blue, then moves right"): keyframes that keep
    every word the description does not change; None unless every stage is such an edit."""
    prompts, controls, noun = [caption], [], ""
    for stage in stages:
        edit = edit_caption(prompts[-1], stage, noun)
        if edit is None:
            return None
        prompts.append(edit.caption)
        controls.append(codes.for_change(edit.looks, edit.pose, first=not controls))
        noun = edit.noun
    return MorphPlan(tuple(prompts), tuple(controls), DEFAULT_NEGATIVE, frames) if controls else None


def plan_morph(text: str, image_caption: str = "") -> MorphPlan:
    """Keyframes P0..Pn and control codes from a coarse description such as "a cat turns into a tiger, then jumps"."""
    frames = DEFAULT_FRAMES
    match = FRAMES.search(text)
    if match:
        frames = max(2, min(MAX_FRAMES, int(match.group(1))))
        text = text[: match.start()] + text[match.end() :]
    caption = image_caption.strip()
    edited = _edit_chain(caption, _stages(text), frames) if caption else None
    if edited is not None:
        return edited
    keyframes: list[tuple[str, str]] = [(caption, "")] if caption else []
    for number, stage in enumerate(_stages(text)):
        transform = TRANSFORM.match(stage)
        action = None if transform else _action(stage)
        if transform and transform.group("b").strip():
            source, target = _clean(transform.group("a")), _clean(transform.group("b"))
            if source and not keyframes and source.lower() not in PRONOUNS:
                keyframes.append(_split_participle(source))
            if not keyframes:
                raise PlanError(
                    "text: say what the first keyframe shows (e.g. 'a cat turns into a tiger') or give image_caption"
                )
            if len(target.split()) == 1:
                target = f"{keyframes[-1][0]}, {target}"  # "becomes older": the same subject, changed
            keyframes.append(_split_participle(target))
        elif action is not None:
            subject, doing = action
            if not keyframes:
                if not subject or subject.lower() in PRONOUNS:
                    raise PlanError(
                        "text: say who acts in the first keyframe (e.g. 'a dog sits, then jumps') or give image_caption"
                    )
                keyframes.append((re.sub(r"^the\b", "a", subject, flags=re.I), ""))
            keyframes.append((keyframes[-1][0], doing))
        elif not (caption and number == 0):  # with a caption, a leading scene description is the input image
            keyframes.append(_split_participle(stage))
    if len(keyframes) < 2:
        raise PlanError(
            "text: a morph needs at least two keyframes; describe a change, e.g. 'a cat turns into a tiger' "
            "or 'summer forest -> winter forest'"
        )
    controls = []
    for (subject_a, action_a), (subject_b, action_b) in zip(keyframes, keyframes[1:], strict=False):
        looks, pose = subject_a.lower() != subject_b.lower(), action_a.lower() != action_b.lower()
        controls.append(codes.for_change(looks, pose, first=not controls))
    return MorphPlan(tuple(_prompt(s, a) for s, a in keyframes), tuple(controls), DEFAULT_NEGATIVE, frames)


TASK = Task(
    name="morph",
    version=1,
    description="LASER keyframes and controls",
    parse=parse_morph_plan,
    plan_rules=lambda request: plan_morph(request.text, request.image_caption),
    plan_llm=plan_llm,
    prompt_overhead=lambda request: messages("", request.image_caption),
    caption_is_text=True,
)
