"""The story task (StoryGPT-V): a character registry and one frame per sentence, every reference resolved.

Owns the plan (``StoryPlan``, ``parse_story_plan``), the LLM reply schema, prompt and normaliser, and the
rule-based planner (``coref``'s recency-and-agreement resolver). The reply schema is smaller than the plan
(only the registry and per-sentence references; the frame text is written by
``language.render_frame_text``), so a small model has less to get wrong and fewer tokens to generate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from ..coref import StoryResolver
from ..language import DIALOGUE_PRONOUNS, PRONOUNS, find_word, names_in, render_frame_text, split_sentences
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
    check_task(obj, "story", what)
    characters, known = [], {}
    for i, entry in enumerate(list_field(obj, "characters", what)):
        where = f"{what}: characters[{i}]"
        if not isinstance(entry, dict):
            raise PlanError(f"{where} must be an object with 'name' and 'description'")
        name = string_field(entry, "name", where)
        if name.lower() in known:
            raise PlanError(f"{where}: field 'name' repeats {name!r}; names must be unique")
        ref = entry.get("reference_image")
        if ref is not None and (not isinstance(ref, int) or isinstance(ref, bool) or ref < 0):
            raise PlanError(f"{where}: field 'reference_image' must be null or an image index >= 0, got {ref!r}")
        known[name.lower()] = name
        characters.append(Character(name, string_field(entry, "description", where), ref))
    frames = []
    for i, entry in enumerate(list_field(obj, "frames", what, min_items=1)):
        where = f"{what}: frames[{i}]"
        if not isinstance(entry, dict):
            raise PlanError(f"{where} must be an object with 'sentence', 'text', 'characters' and 'setting'")
        refs = []
        references = entry.get("references", [])
        if not isinstance(references, list):
            raise PlanError(f"{where}: field 'references' must be a list of objects with 'mention' and 'refers_to'")
        for j, ref in enumerate(references):
            if not isinstance(ref, dict):
                raise PlanError(f"{where}: references[{j}] must be an object with 'mention' and 'refers_to'")
            mention = string_field(ref, "mention", f"{where}: references[{j}]")
            targets = _names(ref.get("refers_to"), f"{where}: references[{j}].refers_to", known, min_items=1)
            refs.append(Reference(mention, targets))
        frames.append(
            Frame(
                sentence=string_field(entry, "sentence", where),
                text=string_field(entry, "text", where),
                characters=_names(entry.get("characters", []), f"{where}: field 'characters'", known),
                setting=string_field(entry, "setting", where, required=False),
                references=tuple(refs),
            )
        )
    return StoryPlan(tuple(characters), tuple(frames))


# --- LLM reply -------------------------------------------------------------------------------------
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


# which characters a mention can mean, by the gender the resolver gives them ("a": a named animal, which may
# be a he or a she); a singular pronoun means one
AGREEING = {"m": ("m", "u", "a"), "f": ("f", "u", "a"), "n": ("n", "a")}
PERSON_KINDS = ("m", "f", "u")


def candidates(mention: str, answer: tuple[str, ...], kinds: dict[str, tuple[str, bool]]) -> tuple[list[str], int]:
    """The characters ``mention`` may mean, as agreement allows, and how many at most: "she" is one woman,
    a person of unknown gender or a named animal; "it" an animal or a thing; "they" and noun phrases any of
    them. The rules' ``answer`` is always among them."""
    word = mention.lower()
    singular = word in PRONOUNS and PRONOUNS[word][0] != "p" or DIALOGUE_PRONOUNS.get(word) == "first"
    if word in PRONOUNS and PRONOUNS[word][0] in AGREEING:
        fits = AGREEING[PRONOUNS[word][0]]
        names = [n for n, (g, plural) in kinds.items() if g in fits and not plural]
    elif word in DIALOGUE_PRONOUNS:
        names = [n for n, (g, plural) in kinds.items() if g in PERSON_KINDS and (not plural or not singular)]
    else:
        names = list(kinds)
    names += [n for n in answer if n not in names]
    return names, 1 if singular and len(answer) == 1 else 4


def guided_schema(rules: StoryPlan, kinds: dict[str, tuple[str, bool]]) -> dict[str, Any]:
    """The tuned model's reply schema with the rules' reading of the story fixed in it: the characters they
    found, and in every frame exactly the mentions they found, in order; the model writes the descriptions and
    settings and chooses whom each mention means among the characters that agree with it (``kinds``: gender
    and group by lower-cased name, :meth:`StoryResolver.kinds`). A small model that lists mentions itself
    skips some and lands frames a sentence off; here the grammar does the bookkeeping and the model only the
    resolving."""
    names = [c.name for c in rules.characters]
    known = {n.lower(): kinds.get(n.lower(), ("u", False)) for n in names}
    spelled = {n.lower(): n for n in names}

    def reference(ref: Reference) -> dict[str, Any]:
        allowed, most = candidates(ref.mention, tuple(n.lower() for n in ref.refers_to), known)
        target = {"type": "array", "items": {"enum": [spelled[n] for n in allowed]}, "minItems": 1, "maxItems": most}
        return {
            "type": "object",
            "properties": {"mention": {"const": ref.mention}, "refers_to": target},
            "required": ["mention", "refers_to"],
            "additionalProperties": False,
        }

    def exactly(items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"type": "array", "prefixItems": items, "items": False, "minItems": len(items), "maxItems": len(items)}

    def character(name: str) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"name": {"const": name}, "description": {"type": "string", "maxLength": 100}},
            "required": ["name", "description"],
            "additionalProperties": False,
        }

    frames = [
        {
            "type": "object",
            "properties": {
                "setting": {"type": "string", "maxLength": 60},
                "references": exactly([reference(r) for r in frame.references]),
            },
            "required": ["setting", "references"],
            "additionalProperties": False,
        }
        for frame in rules.frames
    ]
    return {
        "type": "object",
        "properties": {"characters": exactly([character(n) for n in names]), "frames": exactly(frames)},
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


TUNED_INSTRUCTION = "Resolve the story's references. JSON only."


def story_messages(sentences: list[str]) -> Messages:
    return few_shot(STORY_INSTRUCTIONS, STORY_EXAMPLE, numbered(sentences))


def _fallback_description(name: str) -> str:
    return f"a character named {name}"


def _mention_spans(
    references: list[dict[str, Any]], sentence: str
) -> Iterator[tuple[dict[str, Any], str, tuple[int, int] | None]]:
    """Each reference with its stripped mention and where it stands in ``sentence`` (None when it is not there);
    a mention said twice takes its next occurrence each time."""
    searched: dict[str, int] = {}
    for ref in references:
        mention = ref["mention"].strip()
        span = find_word(sentence, mention, searched.get(mention.lower(), 0))
        if span is not None:
            searched[mention.lower()] = span[1]
        yield ref, mention, span


def _mentions_found(references: list[dict[str, Any]], sentence: str) -> int:
    """How many of ``references`` name words of ``sentence`` (each occurrence used once)."""
    return sum(bool(mention) and span is not None for _, mention, span in _mention_spans(references, sentence))


def align_frames(frames: list[dict[str, Any]], sentences: list[str]) -> list[dict[str, Any]] | None:
    """The reply's frames moved onto the sentences whose words their references name, when the reply lost count
    (a small model skips a frame, or splits one sentence over two, and every later frame lands one off): the
    order-keeping assignment of frames to sentences (several frames may share one) that places the most
    references, nearest their own index; None when the frames as sent already place the most."""
    n, m = len(sentences), len(frames)
    if not n or not m:
        return None
    found = [[_mentions_found(f["references"], s) for s in sentences] for f in frames]
    as_sent = sum(found[k][k] for k in range(min(m, n)))
    # best[k][j]: frames 0..k placed, frame k on sentence j (non-decreasing); a frame's score, less a little
    # for every sentence it moves
    best = [[found[0][j] - 1e-3 * j for j in range(n)]]
    back: list[list[int]] = [[0] * n]
    for k in range(1, m):
        row, arg, running, where = [], [], float("-inf"), 0
        for j in range(n):
            if best[k - 1][j] > running:
                running, where = best[k - 1][j], j
            row.append(running + found[k][j] - 1e-3 * abs(j - k))
            arg.append(where)
        best.append(row)
        back.append(arg)
    j = max(range(n), key=lambda i: best[m - 1][i])
    placement = [0] * m
    for k in range(m - 1, -1, -1):
        placement[k] = j
        j = back[k][j]
    if sum(found[k][placement[k]] for k in range(m)) <= as_sent:
        return None
    aligned: list[dict[str, Any]] = [{"setting": "", "references": []} for _ in sentences]
    for frame, j in zip(frames, placement, strict=True):
        aligned[j]["references"].extend(frame["references"])
        aligned[j]["setting"] = aligned[j]["setting"] or frame["setting"]
    return aligned


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
    aligned = align_frames(frames_in, sentences)
    if aligned is not None:
        notes.append("moved the frames onto the sentences their references name (the reply lost count)")
        frames_in = aligned
    elif len(frames_in) != len(sentences):
        notes.append(f"fitted {len(frames_in)} frames to {len(sentences)} sentences")
        frames_in = (frames_in + [{"setting": "", "references": []}] * len(sentences))[: len(sentences)]
    frames, setting = [], ""
    for sentence, entry in zip(sentences, frames_in, strict=True):
        placed: list[tuple[int, Reference]] = []
        for ref, mention, span in _mention_spans(entry["references"], sentence):
            if span is None:
                notes.append(f"dropped {mention!r}, which is not in sentence {sentence!r}")
                continue
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


def _rules(text: str) -> tuple[StoryPlan, StoryResolver]:
    """The rule-based story plan of ``text``, with the resolver that made it (for what it learnt on the way)."""
    resolver = StoryResolver(text)
    return parse_story_plan(resolver.resolve(), "rule-based story plan"), resolver


def plan_story(text: str) -> StoryPlan:
    """The rule-based story plan of ``text``."""
    return _rules(text)[0]


def guided_story_schema(text: str, sentences: list[str]) -> dict[str, Any] | None:
    """:func:`guided_schema` of the rules' reading of ``text``; None when the rules found no one to choose from
    (an empty enum fits no reply) or split the story into other sentences."""
    rules, resolver = _rules(text)
    if len(rules.frames) != len(sentences) or not rules.characters:
        return None
    return guided_schema(rules, resolver.kinds())


def plan_llm(request: Request, call: Call) -> StoryPlan:
    sentences = split_sentences(request.text)
    return call(
        story_messages(sentences),
        story_schema(len(sentences)),
        lambda obj: normalise_story(obj, sentences),
        "story",
        TUNED_INSTRUCTION,
        lambda: guided_story_schema(request.text, sentences),
    )


TASK = Task(
    name="story",
    version=1,
    description="characters and one frame per sentence",
    parse=parse_story_plan,
    plan_rules=lambda request: plan_story(request.text),
    plan_llm=plan_llm,
    prompt_overhead=lambda request: story_messages([]),
)
