"""What every planning task is made of, and the field checks their parsers share.

A task module (``morph``, ``expand``, ``story``) defines its plan dataclass, parser, reply schema(s),
prompts, normaliser and rule-based planner, and exports them as one :class:`Task`. The planner, the LLM
cache and the planner node only ever go through that object.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any, Protocol

Messages = list[dict[str, str]]


class PlanError(ValueError):
    """A plan that does not fit its schema; the message names the field and what was expected."""


class Plan(Protocol):
    def to_json(self) -> dict[str, Any]: ...


class Call(Protocol):
    """One schema-constrained LLM call, bound to a backend, cache and statistics by the planner.

    ``normalise`` turns a schema-valid reply into the value the task wants and lists what it fixed;
    ``label`` names the call in logs and errors; ``tuned_instruction`` is the one line that replaces the
    few-shot instructions for a model tuned on the pack's tasks (see :func:`tuned_messages`), and
    ``tuned_schema``, when given, makes the schema such a model replies to instead of ``schema`` (called only
    for such a model, so other backends pay nothing for it; None keeps ``schema``).
    """

    def __call__(self, messages: Messages, schema: dict[str, Any], normalise: Callable[[dict[str, Any]], tuple[Any, list[str]]],
                 label: str, tuned_instruction: str,
                 tuned_schema: Callable[[], dict[str, Any] | None] | None = None) -> Any: ...


class Request(Protocol):
    """What a task plans from (``planner.PlanRequest``): the user's text and the task's extra inputs; a task
    reads the fields it needs."""

    text: str
    image_caption: str
    directions: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Task:
    """One planning task, as the planner, the cache and the node see it.

    ``version`` is part of every cached reply's key: bump it when the prompts or the normaliser change
    what a reply means. ``caption_is_text``: the caption of an input image alone is enough to plan from.
    """

    name: str
    version: int
    description: str
    parse: Callable[[dict[str, Any] | str, str], Plan]
    plan_rules: Callable[[Request], Plan]
    plan_llm: Callable[[Request, Call], Plan]
    prompt_overhead: Callable[[Request], Messages]
    llm_calls: Callable[[Request], int] = lambda request: 1
    caption_is_text: bool = False


def load_json_object(data: dict[str, Any] | str, what: str) -> dict[str, Any]:
    """Accept a dict or JSON text; anything else is a PlanError naming ``what``."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise PlanError(f"{what} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from exc
        except RecursionError:
            raise PlanError(f"{what} is nested too deeply to be a plan; paste the plan JSON itself") from None
    if not isinstance(data, dict):
        raise PlanError(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


def check_task(obj: dict[str, Any], task: str, what: str) -> None:
    found = obj.get("task", task)
    if found != task:
        raise PlanError(
            f"{what}: field 'task' is {found!r}, expected {task!r} (this plan came from the {found!r} task; "
            f"set the LLM Prompt Planner's task to {task!r})"
        )


def string_field(obj: dict[str, Any], key: str, what: str, *, required: bool = True, default: str = "") -> str:
    value = obj.get(key, None if required else default)
    if not isinstance(value, str) or (required and not value.strip()):
        raise PlanError(
            f"{what}: field '{key}' must be a non-empty string"
            if required
            else f"{what}: field '{key}' must be a string"
        )
    return value.strip()


def list_field(obj: dict[str, Any], key: str, what: str, *, min_items: int = 0) -> list[Any]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise PlanError(f"{what}: field '{key}' must be a list")
    if len(value) < min_items:
        raise PlanError(f"{what}: field '{key}' needs at least {min_items} item(s), got {len(value)}")
    return value


def few_shot(instructions: str, example: tuple[str, dict[str, Any]], user: str) -> Messages:
    """User/assistant turns only (Gemma's chat format drops system messages) with one worked example,
    which a 270M base model needs to produce anything plan-like."""
    example_user, example_reply = example
    return [
        {"role": "user", "content": f"{instructions}\n\n{example_user}"},
        {"role": "assistant", "content": json.dumps(example_reply)},
        {"role": "user", "content": user},
    ]


def tuned_messages(instruction: str, messages: Messages) -> Messages:
    """What a model tuned on the pack's tasks sees: a one-line reminder of which call this is and the input, no
    worked example (it has learned the task, and the short prompt is what it was trained on)."""
    return [{"role": "user", "content": f"{instruction}\n\n{messages[-1]['content']}"}]
