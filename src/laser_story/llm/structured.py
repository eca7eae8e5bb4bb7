"""Schema-constrained LLM calls: send the schema, validate the reply locally, repair it or ask again.

The schema goes to the backend (grammar-constrained decoding where it has it), but a reply is never
trusted: it is parsed as data only (``json.loads``; model output is never evaluated), coerced towards the
schema, validated with jsonschema and then handed to the task's deterministic normaliser. A reply that
cannot be repaired is retried with the problem appended to the prompt and a new seed, up to
``max_attempts`` calls; after that the error names backend, model and an excerpt of the last reply.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

import jsonschema

from .backends import ChatBackend, Sampling
from .cache import DiskCache, cache_key
from .errors import LLMReplyError
from .tasks.base import PlanError
from .transport import excerpt

log = logging.getLogger(__name__)

T = TypeVar("T")
Normaliser = Callable[[dict[str, Any]], tuple[T, list[str]]]
"""Turns a schema-valid reply into the task's value; returns it with a note per coercion it applied."""

CACHE_FORMAT = 1
FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


@dataclasses.dataclass
class CallStats:
    """What it took to get accepted replies: the figures the benchmark and the node report."""

    calls: int = 0
    cache_hits: int = 0
    repaired: int = 0  # accepted replies that needed any of the three kinds of repair below
    syntax_repaired: int = 0  # not plain JSON: a code fence, text around the object, or cut off at max_tokens
    schema_coerced: int = 0  # JSON, but a type or bound off the schema (e.g. "8" for 8, too many items)
    content_fixed: int = 0  # schema-valid, but fixed by the task's normaliser (e.g. one control code per segment)
    retries: int = 0

    def to_json(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def _close_truncated(text: str) -> dict[str, Any] | None:
    """Best effort for a reply cut off at max_tokens: drop the unfinished tail and close open brackets."""
    stack: list[str] = []
    cuts: list[tuple[int, tuple[str, ...]]] = []
    in_string = escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
                cuts.append((i + 1, tuple(stack)))
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if not stack:
                break
            stack.pop()
            cuts.append((i + 1, tuple(stack)))
        elif ch == ",":
            cuts.append((i, tuple(stack)))
    for end, open_brackets in reversed(cuts[-64:]):
        candidate = text[:end].rstrip().rstrip(",") + "".join(reversed(open_brackets))
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def extract_json_object(text: str) -> tuple[dict[str, Any], list[str]]:
    """Find the JSON object in a reply; returns it and the repairs needed, or raises ValueError saying why not."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("the reply is empty")
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError:
        pass
    else:
        if isinstance(value, dict):
            return value, []
        raise ValueError(f"the reply is a JSON {type(value).__name__}, not an object")
    fenced = FENCE.search(stripped)
    if fenced:
        try:
            value = json.loads(fenced.group(1))
        except json.JSONDecodeError:
            pass
        else:
            if isinstance(value, dict):
                return value, ["stripped a code fence"]
    decoder = json.JSONDecoder()
    starts = [m.start() for m in re.finditer(r"\{", stripped)][:16]
    for start in starts:
        try:
            value, _ = decoder.raw_decode(stripped, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value, ["extracted the first JSON object from surrounding text"]
    if starts:
        value = _close_truncated(stripped[starts[0] :])
        if value is not None:
            return value, ["closed a truncated JSON object"]
    raise ValueError("the reply contains no JSON object")


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def coerce(value: Any, schema: dict[str, Any], path: str = "$") -> tuple[Any, list[str]]:
    """Move ``value`` towards ``schema`` where the intent is unambiguous (types, bounds, extra keys)."""
    notes: list[str] = []
    types = _types(schema)
    if "integer" in types and not _is_int(value):
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            value, notes = int(value), [f"{path}: turned a string into an integer"]
        elif isinstance(value, float) and value.is_integer():
            value, notes = int(value), [f"{path}: turned a float into an integer"]
    if "string" in types and isinstance(value, (int, float)) and not isinstance(value, bool):
        value, notes = str(value), [f"{path}: turned a number into a string"]
    if "array" in types and not isinstance(value, list) and value is not None:
        value, notes = [value], [f"{path}: wrapped a single value in a list"]
    if _is_int(value) and "integer" in types:
        low, high = schema.get("minimum"), schema.get("maximum")
        clamped = max(low, value) if low is not None else value
        clamped = min(high, clamped) if high is not None else clamped
        if clamped != value:
            value, notes = clamped, [*notes, f"{path}: clamped {value} to {clamped}"]
    if isinstance(value, str) and "maxLength" in schema and len(value) > schema["maxLength"]:
        value = value[: schema["maxLength"]]
        notes.append(f"{path}: cut a string to {schema['maxLength']} characters")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            value = value[: schema["maxItems"]]
            notes.append(f"{path}: dropped items beyond {schema['maxItems']}")
        item_schema = schema.get("items")
        if isinstance(item_schema, dict):
            coerced = []
            for i, item in enumerate(value):
                item, item_notes = coerce(item, item_schema, f"{path}[{i}]")
                coerced.append(item)
                notes.extend(item_notes)
            value = coerced
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        extra = [k for k in value if k not in props]
        if extra and schema.get("additionalProperties") is False:
            notes.append(f"{path}: dropped unknown keys {', '.join(map(repr, extra))}")
        value = {k: v for k, v in value.items() if k in props or schema.get("additionalProperties") is not False}
        for key, sub in props.items():
            if key in value:
                value[key], sub_notes = coerce(value[key], sub, f"{path}.{key}")
                notes.extend(sub_notes)
    return value, notes


def schema_problem(value: Any, schema: dict[str, Any]) -> str | None:
    """The first schema violation as 'field: what is wrong', or None when the value is valid."""
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path) or "(top level)"
    return f"field {where.lstrip('.')}: {error.message}"


def accept_reply(
    text: str, schema: dict[str, Any], normalise: Normaliser[T]
) -> tuple[T, tuple[list[str], list[str], list[str]]]:
    """Parse, repair, validate and normalise one reply; returns the value and the (syntax, schema, content)
    repairs it needed, or raises ValueError naming the problem."""
    obj, repairs = extract_json_object(text)
    obj, coerced = coerce(obj, schema)
    problem = schema_problem(obj, schema)
    if problem:
        raise ValueError(problem)
    try:
        value, notes = normalise(obj)
    except PlanError as exc:
        raise ValueError(str(exc)) from None
    return value, (repairs, coerced, notes)


def _with_feedback(messages: list[dict[str, str]], problem: str) -> list[dict[str, str]]:
    last = messages[-1]
    note = f"\n\n(An earlier answer was rejected: {problem}. Answer with one JSON object that fits the schema.)"
    return [*messages[:-1], {**last, "content": last["content"] + note}]


def structured_call(
    backend: ChatBackend,
    messages: list[dict[str, str]],
    schema: dict[str, Any],
    sampling: Sampling,
    normalise: Normaliser[T],
    *,
    task: str,
    task_version: str = "",
    cache: DiskCache | None = None,
    max_attempts: int = 3,
    stats: CallStats | None = None,
) -> T:
    """One schema-valid, normalised answer from ``backend``, from the disk cache when it has one.

    ``task`` names the call in logs and errors; ``task_version`` (the task's name and version from the
    registry) is part of the cache key, so a task whose replies change meaning never reuses old ones."""
    stats = stats if stats is not None else CallStats()
    key = cache_key(
        {
            "format": CACHE_FORMAT,
            "task": task_version,
            "backend": backend.name,
            "model": backend.model_id,
            "model_identity": backend.cache_identity(),
            "messages": messages,
            "schema": schema,
            "seed": sampling.seed,
            "sampling": {"temperature": sampling.temperature, "max_tokens": sampling.max_tokens},
        }
    )
    if cache is not None:
        hit = cache.get(key)
        if hit is not None and isinstance(hit.get("reply"), str):
            try:
                value, _ = accept_reply(hit["reply"], schema, normalise)
            except ValueError as exc:
                log.info("cached %s reply no longer validates (%s); asking the model again", task, exc)
            else:
                stats.cache_hits += 1
                return value
    problem, reply_text, prompt = "", "", messages
    for attempt in range(1, max(1, max_attempts) + 1):
        if attempt > 1:
            stats.retries += 1
            prompt = _with_feedback(messages, problem)
        attempt_sampling = dataclasses.replace(sampling, seed=sampling.seed + attempt - 1)
        stats.calls += 1
        reply = backend.chat(prompt, schema, attempt_sampling)
        reply_text = reply.text
        try:
            value, notes = accept_reply(reply_text, schema, normalise)
        except ValueError as exc:
            problem = str(exc)
            if reply.finish_reason == "length":
                problem += " (the reply was cut off at max_tokens)"
            log.warning(
                "%s reply from %s %r rejected (attempt %d): %s", task, backend.name, backend.model_id, attempt, problem
            )
            continue
        repairs, coerced, fixes = notes
        stats.syntax_repaired += bool(repairs)
        stats.schema_coerced += bool(coerced)
        stats.content_fixed += bool(fixes)
        if repairs or coerced or fixes:
            stats.repaired += 1
            log.info("%s reply from %s repaired: %s", task, backend.name, "; ".join([*repairs, *coerced, *fixes]))
        if cache is not None:
            cache.put(key, {"reply": reply_text, "backend": backend.name, "model": backend.model_id, "task": task})
        return value
    raise LLMReplyError(
        f"{backend.name} backend, model {backend.model_id!r}: no reply fit the {task} schema in {max_attempts} "
        f"attempt(s); last problem: {problem}; reply excerpt: {excerpt(reply_text)!r}. Try a lower temperature, "
        "more max_tokens, a larger model, or the rule-based backend."
    )
