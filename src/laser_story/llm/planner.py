"""The planning entry point the node calls: a request in, a valid typed plan out, from any backend.

``make_plan`` picks the rule-based planner or an LLM backend from an ``LLMConfig``, fits the text into the
model's context (truncating with a warning that says so), runs every LLM call through ``structured_call``
(schema, validation, repair, retries, disk cache) and unloads the model afterwards when asked to.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable

from .backends import ChatBackend, Sampling, make_backend
from .cache import DiskCache, resolve_cache_dir
from .config import LLMConfig
from .errors import AdapterMissingError, LLMConfigError, LLMError
from .structured import CallStats, structured_call
from .tasks import REGISTRY, TASKS
from .tasks.base import Messages, Plan, PlanError, Task, tuned_messages

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` before each LLM call; the node updates its bar and checks for interrupts."""

CHARS_PER_TOKEN = 3  # conservative for English with small-vocabulary tokenizers
MIN_TEXT_TOKENS = 64
# Longer texts are refused, not planned: the rule-based resolver's cost grows faster than linearly (100 000
# characters take seconds, a megabyte minutes), and no plan of that size is a sensible animation or comic.
MAX_TEXT_CHARS = 20_000


def text_problem(text: str, name: str = "text") -> str | None:
    """Why ``text`` cannot be planned (too long), or None."""
    if len(text) > MAX_TEXT_CHARS:
        return (
            f"{name} is {len(text):,} characters, more than the {MAX_TEXT_CHARS:,} one plan takes; shorten it or "
            "split it over several planner nodes"
        )
    return None


@dataclasses.dataclass(frozen=True)
class PlanRequest:
    """What to plan: the task, the user's text and the task's extra inputs."""

    task: str
    text: str
    image_caption: str = ""
    directions: tuple[str, ...] = ("left", "right")
    sampling: Sampling = Sampling()

    def __post_init__(self) -> None:
        if self.task not in REGISTRY:
            raise PlanError(f"task {self.task!r} is not one of {', '.join(TASKS)}")
        problem = text_problem(self.text)
        if problem:
            raise PlanError(problem)
        if not self.text.strip() and not (REGISTRY[self.task].caption_is_text and self.image_caption.strip()):
            raise PlanError(
                f"text is empty: write the {self.task} description to plan from, or paste a plan into plan_override"
            )


@dataclasses.dataclass
class PlanResult:
    plan: Plan
    source: str
    warnings: list[str] = dataclasses.field(default_factory=list)
    stats: CallStats = dataclasses.field(default_factory=CallStats)


def plan_with_rules(request: PlanRequest) -> Plan:
    """The rule-based plan: no model, deterministic."""
    return REGISTRY[request.task].plan_rules(request)


def fit_text(text: str, budget_tokens: int) -> tuple[str, str | None]:
    """``text`` cut to about ``budget_tokens`` at a sentence or word boundary, and the warning if it was cut."""
    limit = budget_tokens * CHARS_PER_TOKEN
    if len(text) <= limit:
        return text, None
    cut = text[:limit]
    sentence_end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
    cut = cut[: sentence_end + 1] if sentence_end > limit // 2 else cut.rsplit(" ", 1)[0]
    warning = (
        f"text is longer than the model's context allows ({len(text)} characters, about "
        f"{len(text) // CHARS_PER_TOKEN} tokens; room for about {budget_tokens}): only the first "
        f"{len(cut)} characters were planned. Shorten the text, raise n_ctx or lower max_tokens."
    )
    return cut, warning


class LLMPlanner:
    """Plans with a chat backend; every call is schema-checked, repaired or retried, and cached."""

    def __init__(
        self,
        backend: ChatBackend,
        cache: DiskCache | None = None,
        max_attempts: int = 3,
        progress: Progress | None = None,
    ) -> None:
        self.backend = backend
        self.cache = cache
        self.max_attempts = max_attempts
        self.progress = progress
        self._done = self._total = 0

    def _budget(self, request: PlanRequest, overhead_messages: list[dict[str, str]]) -> int:
        overhead = sum(len(m["content"]) for m in overhead_messages) // CHARS_PER_TOKEN + 16 * len(overhead_messages)
        budget = self.backend.context_tokens - request.sampling.max_tokens - overhead
        if budget < MIN_TEXT_TOKENS:
            raise LLMConfigError(
                f"{self.backend.name} backend: n_ctx {self.backend.context_tokens} leaves no room for the text after "
                f"the prompt (~{overhead} tokens) and max_tokens {request.sampling.max_tokens}; raise n_ctx or "
                "lower max_tokens"
            )
        return budget

    def _call(self, task: Task, request: PlanRequest, stats: CallStats):
        """The task's ``Call``: one structured call with progress, cache and statistics."""

        def call(messages: Messages, schema, normalise, label: str, tuned_instruction: str, tuned_schema=None):
            if self.backend.tuned:
                messages = tuned_messages(tuned_instruction, messages)
                schema = (tuned_schema() if tuned_schema else None) or schema
            if self.progress is not None:
                self.progress(self._done, self._total)
            self._done += 1
            return structured_call(
                self.backend,
                messages,
                schema,
                request.sampling,
                normalise,
                task=label,
                task_version=f"{task.name}/{task.version}",
                cache=self.cache,
                max_attempts=self.max_attempts,
                stats=stats,
            )

        return call

    def plan(self, request: PlanRequest) -> PlanResult:
        task = REGISTRY[request.task]
        stats, warnings = CallStats(), []
        self._done, self._total = 0, task.llm_calls(request)
        text, warning = fit_text(request.text, self._budget(request, task.prompt_overhead(request)))
        if warning:
            warnings.append(warning)
            log.warning("%s", warning)
        plan = task.plan_llm(dataclasses.replace(request, text=text), self._call(task, request, stats))
        if self.progress is not None:
            self.progress(self._total, self._total)
        return PlanResult(plan, f"{self.backend.name}:{self.backend.model_id}", warnings, stats)


def make_plan(
    request: PlanRequest,
    config: LLMConfig | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    models_dirs: list[str] | tuple[str, ...] = (),
    progress: Progress | None = None,
) -> PlanResult:
    """Plan ``request`` with the backend ``config`` names (the default backend when None)."""
    config = config or LLMConfig()
    try:
        backend = make_backend(config, models_dirs)
    except AdapterMissingError as exc:
        log.warning("%s", exc)
        return PlanResult(plan_with_rules(request), "rules", [str(exc)])
    if backend is None:
        return PlanResult(plan_with_rules(request), "rules")
    directory = resolve_cache_dir(cache_dir)
    planner = LLMPlanner(backend, DiskCache(directory) if directory else None, config.max_attempts, progress)
    try:
        return planner.plan(request)
    finally:
        if config.unload_after:
            try:
                backend.unload()
            except LLMError as exc:
                log.warning("could not unload %s model %r: %s", backend.name, backend.model_id, exc)
