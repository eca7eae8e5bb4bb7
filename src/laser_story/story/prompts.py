"""A frame's prompt and where each character's tokens sit in it.

The prompt is the frame's resolved text with each present character's registry description written after its
name ("Moss, a medium green square, jumps at the top right") and the setting, so every frame says how each
character looks. It is built from segments, each wrapped as ``(text:1.0)``: ComfyUI's tokenizer gives every
weighted segment its own word id and leaves the encoding of weight 1.0 untouched, so the token positions of a
character's name and description are read off the tokenizer's own output (``token_spans``), for any CLIP
tokenizer and across 77-token chunks. Pure module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..llm.language import find_word

PROMPT_END = ".!?;, "


@dataclasses.dataclass(frozen=True)
class Segment:
    text: str
    character: str | None = None
    role: str = ""  # "name" or "description" of ``character``


def frame_segments(text: str, present: Sequence[str], descriptions: dict[str, str], setting: str = "") -> list[Segment]:
    """Segments of a frame's prompt (see the module doc)."""
    spans = []
    for name in present:
        start = 0
        while (span := find_word(text, name, start)) is not None:
            spans.append((span[0], span[1], name))
            start = span[1]
    spans.sort()
    segments: list[Segment] = []
    described: set[str] = set()
    position = 0
    for start, end, name in spans:
        if start < position:
            continue
        if text[position:start]:
            segments.append(Segment(text[position:start]))
        segments.append(Segment(text[start:end], name, "name"))
        if name in described:  # every mention is the character's; the description follows the first
            position = end
            continue
        described.add(name)
        description = descriptions.get(name, "")
        rest = text[end:]
        stated = rest.lstrip(" ,").lower().startswith(description.lower()) if description else False
        if stated:  # "Moss, a medium green square, ...": the sentence already describes it
            lead = len(rest) - len(rest.lstrip(" ,"))
            segments.append(Segment(rest[:lead]))
            segments.append(Segment(rest[lead:lead + len(description)], name, "description"))
            position = end + lead + len(description)
        else:
            if description:
                segments.append(Segment(", "))
                segments.append(Segment(description, name, "description"))
                segments.append(Segment("," if rest[:1] not in (",", ".", "!", "?", ";", ":") else ""))
            position = end
    if text[position:]:
        segments.append(Segment(text[position:]))
    named = {s.character for s in segments if s.character}
    for name in present:  # present but not named in the text (e.g. a plan edited by hand)
        if name not in named:
            segments += [Segment(", "), Segment(name, name, "name")]
            if descriptions.get(name):
                segments += [Segment(", "), Segment(descriptions[name], name, "description")]
    if setting and setting.lower() not in text.lower():
        last = segments[-1]
        segments[-1] = dataclasses.replace(last, text=last.text.rstrip(PROMPT_END)) if last.character is None else last
        segments += [Segment(", "), Segment(setting)]
    return [s for s in segments if s.text]


def layout_segments(places: dict[str, str], descriptions: dict[str, str], setting: str = "") -> list[Segment]:
    """A caption-style prompt from the layout alone: "Pip, a small red star, on the left, and Bo, ..., a sand
    background" (for models trained on captions, not on sentences, such as the Built-in Tiny Model)."""
    from .layout import PLACE_PHRASES

    segments: list[Segment] = []
    for i, (name, place) in enumerate(places.items()):
        if i:
            segments.append(Segment(", and " if i == len(places) - 1 else ", "))
        segments.append(Segment(name, name, "name"))
        if descriptions.get(name):
            segments += [Segment(", "), Segment(descriptions[name], name, "description"), Segment(",")]
        segments.append(Segment(f" {PLACE_PHRASES[place]}"))
    if setting:
        segments += [Segment(", " if segments else ""), Segment(setting)]
    return [s for s in segments if s.text]


def _escape(text: str) -> str:
    return text.replace("\\", " ").replace("(", "\\(").replace(")", "\\)")


def weighted_prompt(segments: Sequence[Segment]) -> str:
    """The prompt ComfyUI tokenizes: every segment as ``(text:1.0)``, so segment i gets word id i + 1."""
    return "".join(f"({_escape(s.text)}:1.0)" for s in segments)


def plain_prompt(segments: Sequence[Segment]) -> str:
    return " ".join("".join(s.text for s in segments).split())


def encode(clip, segments: Sequence[Segment]):
    """(tokens [1, T, D], pooled or None, ``token_spans``) of a prompt's segments, tokenized once: the word ids
    locate the characters and the encoder reads only each entry's token and weight."""
    tokenized = clip.tokenize(weighted_prompt(segments), return_word_ids=True)
    tokens, pooled = clip.encode_from_tokens(tokenized, return_pooled=True)
    return tokens, pooled, token_spans(tokenized, segments)


def token_spans(tokenized: dict, segments: Sequence[Segment]) -> dict[str, dict[str, list[int]]]:
    """Per character, the positions of its ``name`` tokens, of ``all`` its tokens (name and description) and of the
    last token of each mention of its name (``ends``, where a fuser writes its image feature) in the encoded context, from ``clip.tokenize(weighted_prompt(segments), return_word_ids=True)``.

    Positions count across 77-token chunks as the encoder concatenates them; with several encoders (SDXL), the
    first one's layout is used (they tokenize alike)."""
    chunks = next(iter(tokenized.values()))
    owner = {i + 1: s for i, s in enumerate(segments)}
    spans: dict[str, dict[str, list[int]]] = {}
    position, previous = 0, None
    for chunk in chunks:
        for entry in chunk:
            word = entry[2] if len(entry) > 2 else 0
            segment = owner.get(word)
            if segment is not None and segment.character is not None:
                found = spans.setdefault(segment.character, {"name": [], "all": [], "ends": []})
                found["all"].append(position)
                if segment.role == "name":
                    found["name"].append(position)
                    if word == previous:
                        found["ends"][-1] = position
                    else:
                        found["ends"].append(position)
            previous = word
            position += 1
    return spans
