"""Replies of a fixed shape, written slot by slot.

A reply schema whose shape is fixed leaves a model little to write: in the tuned story schema the
characters' names, the frames and every mention are given, and only the descriptions, the settings and
whom each mention means are open. Under a grammar the model still writes every fixed token, one decode
step each, with the grammar checked against the whole vocabulary at every step (Gemma's is 262k tokens).
Filled as a form, the fixed text goes in as prompt, which the server evaluates in one batch and keeps
cached, and the model writes only the open slots: a story of 8 sentences takes about a quarter of the time.

A slot is written freely up to its closing quote and checked; a choice that is not among its options (or
too many of them) is written again under a grammar of the options alone. At temperature 0 that gives what
the grammar would have given: a free greedy answer that fits is also the constrained greedy answer.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

# Gemma's chat turns, as llama.cpp's "gemma" chat format writes them and the planner adapter was trained on
USER, MODEL, END = "<start_of_turn>user\n", "<start_of_turn>model\n", "<end_of_turn>\n"


def gemma_prompt(messages: list[dict[str, str]]) -> str:
    """The prompt text of ``messages`` in Gemma's chat format, open for the model's turn (system turns are
    dropped, as llama.cpp's gemma format drops them)."""
    roles = {"user": USER, "assistant": MODEL}
    turns = "".join(f"{roles[m['role']]}{m['content']}{END}" for m in messages if m["role"] in roles and m["content"])
    return turns + MODEL


@dataclasses.dataclass(frozen=True)
class Text:
    """A JSON string the model writes, at most ``max_length`` characters."""

    max_length: int

    @property
    def max_tokens(self) -> int:
        return self.max_length // 3 + 8


@dataclasses.dataclass(frozen=True)
class Pick:
    """A JSON array of one to ``most`` distinct strings from ``options``, chosen by the model."""

    options: tuple[str, ...]
    most: int

    @property
    def max_tokens(self) -> int:
        return self.most * (max(len(o) for o in self.options) // 2 + 4)

    def grammar(self) -> str:
        """GBNF of the slot's text up to and including its closing ``"]``."""
        names = " | ".join(json.dumps(_encoded(o)) for o in self.options)
        more = f' ("\\",\\"" name){{0,{self.most - 1}}}' if self.most > 1 else ""
        return f'root ::= name{more} "\\"]"\nname ::= {names}\n'

    def parse(self, written: str) -> list[str] | None:
        """The options ``written`` (the slot's text without its closing ``"]``) names, or None when it is not
        one to ``most`` distinct options."""
        chosen = [_decoded(piece) for piece in written.split('","')]
        if not 1 <= len(chosen) <= self.most or len(set(chosen)) < len(chosen) or not set(chosen) <= set(self.options):
            return None
        return chosen


Part = str | Text | Pick
Form = tuple[Part, ...]
CLOSE = {Text: '"', Pick: '"]'}  # what ends a slot's text


def _encoded(value: str) -> str:
    """``value`` as it stands between the quotes of a JSON string (escaped as the training replies were)."""
    return json.dumps(value)[1:-1]


def _decoded(written: str) -> str:
    """The string a model wrote between quotes: its JSON escapes read where they are valid, else as written."""
    try:
        return json.loads(f'"{written}"')
    except json.JSONDecodeError:
        return written


def _compile(schema: Any) -> list[Part] | None:
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return [json.dumps(schema["const"], separators=(",", ":"))]
    kind = schema.get("type")
    if kind == "string" and set(schema) == {"type", "maxLength"}:  # bounded, and may be empty
        return ['"', Text(int(schema["maxLength"])), '"']
    if kind == "object":
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is not False or list(schema.get("required", [])) != list(props):
            return None
        parts: list[Part] = ["{"]
        for i, (key, sub) in enumerate(props.items()):
            inner = _compile(sub)
            if inner is None:
                return None
            parts += [("," if i else "") + json.dumps(key) + ":", *inner]
        return [*parts, "}"]
    if kind in (None, "array") and "prefixItems" in schema and schema.get("items") is False:
        parts = ["["]
        for i, sub in enumerate(schema["prefixItems"]):
            inner = _compile(sub)
            if inner is None:
                return None
            parts += [","] * bool(i) + inner
        return [*parts, "]"]
    items = schema.get("items")
    if kind == "array" and isinstance(items, dict) and set(items) == {"enum"} and schema.get("minItems", 0) >= 1:
        options = items["enum"]
        if not options or not all(isinstance(o, str) for o in options):
            return None
        return ['["', Pick(tuple(options), int(schema.get("maxItems", len(options)))), '"]']
    return None


def form_of(schema: dict[str, Any]) -> Form | None:
    """The form of a fixed-shape ``schema`` (objects with all their properties required and no others, ``const``,
    arrays of fixed items, bounded strings, arrays of enum strings), literals merged; None for any other schema."""
    parts = _compile(schema)
    if parts is None or not any(isinstance(p, (Text, Pick)) for p in parts):
        return None
    merged: list[Part] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return tuple(merged)


@dataclasses.dataclass
class Filled:
    text: str
    completions: int = 0
    constrained: int = 0  # slots written again under their grammar


Complete = Callable[[str, str, int, str | None], str]
"""``complete(prompt, stop, max_tokens, grammar)``: the model's continuation of ``prompt`` up to (not including)
``stop``, under the GBNF ``grammar`` when one is given."""


def fill(form: Form, prompt: str, complete: Complete) -> Filled:
    """The reply ``form`` describes, its slots written by ``complete`` after ``prompt`` and what came before."""
    out = Filled("")
    for part in form:
        if isinstance(part, str):
            out.text += part
            continue
        written = complete(prompt + out.text, CLOSE[type(part)], part.max_tokens, None)
        out.completions += 1
        if isinstance(part, Text):
            out.text += _encoded(_decoded(written)[: part.max_length])
            continue
        chosen = part.parse(written)
        if chosen is None:
            written = complete(prompt + out.text, CLOSE[Pick], part.max_tokens, part.grammar())
            out.completions += 1
            out.constrained += 1
            chosen = part.parse(written) or [_decoded(p) for p in written.split('","')]
        out.text += '","'.join(_encoded(c) for c in chosen)
    return out
