"""The planning tasks, one module each, and the one table every consumer reads.

The planner, the LLM cache and the planner node know tasks only through ``REGISTRY``. A new task is a
module next to these (its plan, parser, prompts, normaliser and rule-based planner, exported as
``TASK``) plus its name in ``TASK_MODULES``.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Plan, PlanError, Task, load_json_object

TASK_MODULES = ("morph", "expand", "story")

REGISTRY: dict[str, Task] = {
    task.name: task for task in (importlib.import_module(f".{name}", __name__).TASK for name in TASK_MODULES)
}
TASKS = tuple(REGISTRY)


def parse_plan(data: dict[str, Any] | str, what: str = "plan", task: str | None = None) -> Plan:
    """Validate any plan; ``task`` (when given) is the task the plan must belong to, and the default."""
    obj = load_json_object(data, what)
    found = obj.get("task", task)
    if not isinstance(found, str) or found not in REGISTRY:
        raise PlanError(f"{what}: field 'task' is {found!r}; expected one of {', '.join(TASKS)}")
    if task is not None and found != task:
        raise PlanError(f"{what}: field 'task' is {found!r} but this node plans {task!r}; change one of them")
    return REGISTRY[found].parse({**obj, "task": found}, what)
