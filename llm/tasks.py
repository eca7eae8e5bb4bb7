"""The three planning tasks for LLM backends: reply schema, few-shot prompt and deterministic normaliser.

Prompts use only user/assistant turns (Gemma's chat format drops system messages) and one worked example,
which a 270M base model needs to produce anything plan-like. Reply schemas are deliberately smaller than
the final plans (a story reply holds only the registry and per-sentence references; the frame text is
written by ``language.render_frame_text``), so a small model has less to get wrong and fewer tokens to
generate. Each normaliser turns a schema-valid reply into the final plan and reports every coercion it
applied, which counts as a repair.
"""

from __future__ import annotations

import json
from typing import Any

from .language import PRONOUNS, find_word, names_in, render_frame_text
from .plans import (
    CONTROL_CODES,
    Character,
    ExpandPlan,
    ExpandStep,
    Frame,
    MorphPlan,
    PlanError,
    Reference,
    StoryPlan,
    parse_morph_plan,
    parse_story_plan,
)

Messages = list[dict[str, str]]

# --- morph ------------------------------------------------------------------------------------------
MORPH_SCHEMA: dict[str, Any] = {
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
            "items": {"type": "string", "enum": list(CONTROL_CODES)},
            "minItems": 1,
            "maxItems": 5,
        },
        "negative": {"type": "string", "maxLength": 100},
        "frames_per_segment": {"type": "integer", "minimum": 2, "maximum": 64},
    },
    "required": ["prompts", "controls", "negative", "frames_per_segment"],
    "additionalProperties": False,
}
MORPH_INSTRUCTIONS = (
    "Plan a morphing animation. Turn the description into keyframe image prompts P0..Pn (P0 is the start) and "
    'give one control code per pair of neighbouring keyframes: "0" the look or texture changes, "1" the pose or '
    'action changes, "2" both change, "3" keep the previous code. Add a negative prompt and frames_per_segment. '
    "Answer with JSON only."
)
MORPH_EXAMPLE = (
    "Description: a cat turns into a tiger, then the tiger jumps",
    {
        "prompts": ["a photo of a cat", "a photo of a tiger", "a photo of a tiger jumping"],
        "controls": ["0", "1"],
        "negative": "blurry, low quality",
        "frames_per_segment": 8,
    },
)


def morph_messages(text: str, image_caption: str = "") -> Messages:
    example_user, example_reply = MORPH_EXAMPLE
    user = f"Description: {text}"
    if image_caption:
        user += f"\nP0 must be the input image: {image_caption}"
    return [
        {"role": "user", "content": f"{MORPH_INSTRUCTIONS}\n\n{example_user}"},
        {"role": "assistant", "content": json.dumps(example_reply)},
        {"role": "user", "content": user},
    ]


def normalise_morph(obj: dict[str, Any], image_caption: str = "") -> tuple[MorphPlan, list[str]]:
    """Make a schema-valid morph reply a valid ``MorphPlan``: P0 is the caption, one code per segment."""
    notes = []
    prompts = [p.strip() for p in obj["prompts"] if p.strip()]
    if len(prompts) != len(obj["prompts"]):
        notes.append("dropped empty prompts")
    if image_caption:
        prompts[:1] = [image_caption.strip()]
    controls = list(obj["controls"])
    segments = len(prompts) - 1
    if len(controls) != segments:
        notes.append(f"fitted {len(controls)} control codes to {segments} segments")
        controls = (controls + ["3"] * segments)[:segments]
    if controls and controls[0] == "3":
        notes.append("replaced a leading '3' (nothing to keep) with '2'")
        controls[0] = "2"
    plan = parse_morph_plan({**obj, "prompts": prompts, "controls": controls}, "morph reply")
    return plan, notes


# --- expansion captions -----------------------------------------------------------------------------
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


def global_messages(text: str, image_caption: str = "") -> Messages:
    example_user, example_reply = GLOBAL_EXAMPLE
    user = f"Scene: {text}" + (f"\nThe starting image shows: {image_caption}" if image_caption else "")
    return [
        {"role": "user", "content": f"{GLOBAL_INSTRUCTIONS}\n\n{example_user}"},
        {"role": "assistant", "content": json.dumps(example_reply)},
        {"role": "user", "content": user},
    ]


def local_messages(global_caption: str, direction: str, captions_so_far: list[str]) -> Messages:
    example_user, example_reply = LOCAL_EXAMPLE
    so_far = "; ".join(captions_so_far) if captions_so_far else "(none yet)"
    user = f"Global caption: {global_caption}\nRegions so far: {so_far}\nNew region: {direction}"
    return [
        {"role": "user", "content": f"{LOCAL_INSTRUCTIONS}\n\n{example_user}"},
        {"role": "assistant", "content": json.dumps(example_reply)},
        {"role": "user", "content": user},
    ]


def normalise_caption(key: str):
    """Normaliser for a one-caption reply: whitespace folded, and never empty."""

    def normalise(obj: dict[str, Any]) -> tuple[str, list[str]]:
        caption = " ".join(obj[key].split()).strip(" .")
        if not caption:
            raise PlanError(f"field '{key}' is empty")
        return caption, []

    return normalise


def assemble_expand(global_caption: str, steps: list[tuple[str, str]], image_caption: str) -> ExpandPlan:
    return ExpandPlan(global_caption, tuple(ExpandStep(d, c) for d, c in steps), image_caption.strip())


# --- story ------------------------------------------------------------------------------------------
def story_schema(sentences: int) -> dict[str, Any]:
    """Reply schema for a story of ``sentences`` sentences: exactly one frame per sentence."""
    name = {"type": "string", "minLength": 1, "maxLength": 40}
    reference = {
        "type": "object",
        "properties": {
            "mention": {"type": "string", "minLength": 1, "maxLength": 30},
            "refers_to": {"type": "array", "items": name, "minItems": 1, "maxItems": 4},
        },
        "required": ["mention", "refers_to"],
        "additionalProperties": False,
    }
    frame = {
        "type": "object",
        "properties": {
            "setting": {"type": "string", "maxLength": 60},
            "references": {"type": "array", "items": reference, "maxItems": 6},
        },
        "required": ["setting", "references"],
        "additionalProperties": False,
    }
    character = {
        "type": "object",
        "properties": {"name": name, "description": {"type": "string", "maxLength": 100}},
        "required": ["name", "description"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "characters": {"type": "array", "items": character, "minItems": 1, "maxItems": 8},
            "frames": {"type": "array", "items": frame, "minItems": sentences, "maxItems": sentences},
        },
        "required": ["characters", "frames"],
        "additionalProperties": False,
    }


STORY_INSTRUCTIONS = (
    "Read the story. List its characters with a short visual description. Then give one frame per numbered "
    "sentence: its setting, and every pronoun (he, she, it, they, him, her, his, their) or vague reference "
    "(the boy) in that sentence with the character names it means. Answer with JSON only."
)
STORY_EXAMPLE = (
    "1. Tom, a boy in a red cap, walked his dog Rex to the park.\n2. He threw a ball and it ran after it.\n"
    "3. Later Tom met Anna, and they sat under a tree.",
    {
        "characters": [
            {"name": "Tom", "description": "a boy in a red cap"},
            {"name": "Rex", "description": "a dog"},
            {"name": "Anna", "description": "a girl"},
        ],
        "frames": [
            {"setting": "the park", "references": [{"mention": "his", "refers_to": ["Tom"]}]},
            {
                "setting": "the park",
                "references": [{"mention": "He", "refers_to": ["Tom"]}, {"mention": "it", "refers_to": ["Rex"]}],
            },
            {"setting": "the park", "references": [{"mention": "they", "refers_to": ["Tom", "Anna"]}]},
        ],
    },
)


def numbered(sentences: list[str]) -> str:
    return "\n".join(f"{i}. {s}" for i, s in enumerate(sentences, start=1))


def story_messages(sentences: list[str]) -> Messages:
    example_user, example_reply = STORY_EXAMPLE
    return [
        {"role": "user", "content": f"{STORY_INSTRUCTIONS}\n\n{example_user}"},
        {"role": "assistant", "content": json.dumps(example_reply)},
        {"role": "user", "content": numbered(sentences)},
    ]


def _fallback_description(name: str) -> str:
    return f"a character named {name}"


def normalise_story(obj: dict[str, Any], sentences: list[str]) -> tuple[StoryPlan, list[str]]:
    """Make a schema-valid story reply a valid ``StoryPlan`` over exactly ``sentences``."""
    notes: list[str] = []
    registry: dict[str, Character] = {}
    for entry in obj["characters"]:
        name = " ".join(entry["name"].split())
        if not name or name.lower() in registry or name.lower() in PRONOUNS:
            notes.append(f"dropped the character name {name!r} (empty, repeated or a pronoun)")
            continue
        description = " ".join(entry["description"].split()) or _fallback_description(name)
        registry[name.lower()] = Character(name, description)
    frames_in = list(obj["frames"])
    if len(frames_in) != len(sentences):
        notes.append(f"fitted {len(frames_in)} frames to {len(sentences)} sentences")
        frames_in = (frames_in + [{"setting": "", "references": []}] * len(sentences))[: len(sentences)]
    frames, setting = [], ""
    for sentence, entry in zip(sentences, frames_in, strict=True):
        placed: list[tuple[int, Reference]] = []
        searched: dict[str, int] = {}
        for ref in entry["references"]:
            mention = ref["mention"].strip()
            span = find_word(sentence, mention, searched.get(mention.lower(), 0))
            if span is None:
                notes.append(f"dropped {mention!r}, which is not in sentence {sentence!r}")
                continue
            searched[mention.lower()] = span[1]
            names = []
            for target in ref["refers_to"]:
                target = " ".join(target.split())
                if not target or target.lower() in PRONOUNS:
                    notes.append(f"dropped {target!r} as the character {mention!r} refers to")
                    continue
                if target.lower() not in registry:
                    notes.append(f"added {target!r}, named in a reference, to the characters")
                    registry[target.lower()] = Character(target, _fallback_description(target))
                names.append(registry[target.lower()].name)
            if names:
                placed.append((span[0], Reference(sentence[span[0] : span[1]], tuple(dict.fromkeys(names)))))
        references = [r for _, r in sorted(placed, key=lambda p: p[0])]
        setting = " ".join(entry["setting"].split()) or setting
        explicit = names_in(sentence, [c.name for c in registry.values()])
        present = dict.fromkeys([*explicit, *(n for r in references for n in r.refers_to)])
        text = render_frame_text(sentence, [(r.mention, r.refers_to) for r in references])
        frames.append(Frame(sentence, text, tuple(present), setting, tuple(references)))
    plan = StoryPlan(tuple(registry.values()), tuple(frames))
    return parse_story_plan(plan.to_json(), "story reply"), notes
