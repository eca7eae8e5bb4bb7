"""Shared attention plumbing: the feature bank, step matching, cond/uncond chunking and the run-state lifecycle.

Every pipeline that captures features in one sampling run and injects them in another (LASER's
inversion -> frames, a story's reference frame -> the other frames) builds on this; its own policy (which
step and layer gets what) lives in a module beside this one.

Lifecycle: a pipeline puts its :class:`RunState` on a ``model.clone()`` as a ModelPatcher *attachment*
(:func:`attach`). Attachments are carried by reference through ``clone()``, so a bank filled in one run is
the very object the next run reads, without the state ever entering ``model_options`` (which ``clone()``
deep-copies). The OUTER_SAMPLE wrapper registered by :func:`ensure_lifecycle` starts every sampling run
by resetting the state's bookkeeping and placing it in that run's own copy of ``transformer_options``
under :data:`STATE_KEY`, which is where the patches find it. No ComfyUI import at import time.
"""

from __future__ import annotations

import collections
import dataclasses
import weakref
from typing import Any, ClassVar

import torch

STATE_KEY = "laser_story"

Tensor = torch.Tensor


class FeatureBank:
    """Source features per (kind, step, layer, cond/uncond chunk); only what the policy asks for.

    Every bank of the process is known to :meth:`holding`, so a server can show that none is left holding
    features after its runs (a pipeline clears its banks when a run ends, also when it is interrupted).
    """

    _all: ClassVar[weakref.WeakSet] = weakref.WeakSet()

    def __init__(self, store_dtype: torch.dtype = torch.float16):
        self.store_dtype = store_dtype
        self._features: dict[tuple[str, int, Any, int], Tensor] = {}
        FeatureBank._all.add(self)

    @classmethod
    def holding(cls) -> tuple[int, int]:
        """(banks of this process that hold features, their bytes)."""
        full = [bank for bank in list(cls._all) if len(bank)]
        return len(full), sum(bank.nbytes for bank in full)

    def put(self, kind: str, step: int, layer: Any, chunk: int, value: Tensor) -> None:
        self._features[(kind, step, layer, chunk)] = value.detach().to(self.store_dtype, copy=True)

    def get(self, kind: str, step: int, layer: Any, chunk: int) -> Tensor | None:
        """The chunk's own source feature, else the conditional one (a capture run at cfg 1 has only that)."""
        value = self._features.get((kind, step, layer, chunk))
        if value is None:
            value = self._features.get((kind, step, layer, 0))
        return value

    def __len__(self) -> int:
        return len(self._features)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._features.values())

    def clear(self) -> None:
        self._features.clear()


@dataclasses.dataclass
class RunState:
    """What the patches of one pipeline read during a sampling run; ``phase`` is ``idle``, ``capture`` or
    ``inject``.

    ``sigmas`` is the schedule the steps are numbered by: a patch finds its step by matching the current
    sigma to it, which serves a capture run over the reversed schedule (an inversion evaluates the model at
    the same sigmas) as well as the injection run. ``fired`` counts patch events per run.
    """

    phase: str = "idle"
    bank: FeatureBank | None = None
    sigmas: Tensor | None = None
    fired: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    @property
    def active(self) -> bool:
        return self.phase != "idle" and self.bank is not None

    def begin_run(self) -> None:
        """Reset per-sampling-run bookkeeping (the bank belongs to the capture/inject pair and is kept)."""
        self.fired.clear()

    def step_of(self, sigma: Tensor) -> int | None:
        """Index of ``sigma`` in the schedule, or None when this run uses another schedule."""
        if self.sigmas is None:
            return None
        schedule = self.sigmas[:-1].to(sigma.device, torch.float32)
        diff = (schedule - sigma.reshape(-1)[0].float()).abs()
        step = int(torch.argmin(diff))
        return step if diff[step] <= 1e-4 * max(1.0, float(schedule[step])) else None


def active_state(options: dict, kind: type[RunState]) -> tuple[Any, int] | None:
    """(state, step) when ``options`` (a patch's transformer_options) carries an active ``kind`` state whose
    schedule holds the current sigma; None means: pass the inputs through untouched."""
    state = options.get(STATE_KEY)
    if not isinstance(state, kind) or not state.active:
        return None
    sigmas = options.get("sigmas")
    if sigmas is None:
        return None
    step = state.step_of(sigmas)
    return None if step is None else (state, step)


def chunks(x: Tensor, cond_or_uncond: list[int]) -> list[tuple[int, Tensor]]:
    """Split a UNet batch into its (cond/uncond kind, frames) chunks, in the order ComfyUI batched them."""
    per_chunk = x.shape[0] // len(cond_or_uncond)
    return [(kind, x[i * per_chunk:(i + 1) * per_chunk]) for i, kind in enumerate(cond_or_uncond)]


def capture(bank: FeatureBank, kind: str, step: int, layer: Any, x: Tensor, cond_or_uncond: list[int]) -> None:
    """Bank the first frame of each chunk (capture runs hold one frame)."""
    for chunk, frames in chunks(x, cond_or_uncond):
        bank.put(kind, step, layer, chunk, frames[:1])


def source_like(bank: FeatureBank, kind: str, step: int, layer: Any, x: Tensor, cond_or_uncond: list[int]) -> Tensor | None:
    """The banked source feature laid out like ``x``: per chunk kind, broadcast over that chunk's frames."""
    parts = []
    for chunk, frames in chunks(x, cond_or_uncond):
        source = bank.get(kind, step, layer, chunk)
        if source is None:
            return None
        parts.append(source.to(x.device, x.dtype).expand(frames.shape[0], *source.shape[1:]))
    return torch.cat(parts)


def find_state(model, kind: type[RunState] = RunState) -> Any:
    """The ``kind`` state attached to a (possibly patched) ModelPatcher, or None."""
    state = model.get_attachment(STATE_KEY)
    return state if isinstance(state, kind) else None


def attach(model, state: RunState) -> None:
    """Put ``state`` on ``model`` (a clone the caller owns) for its next sampling runs."""
    model.set_attachments(STATE_KEY, state)


def begin_run(executor, *args, **kwargs):
    """OUTER_SAMPLE wrapper: the attached state starts every sampling run with fresh bookkeeping, placed in
    this run's copy of ``transformer_options`` (ComfyUI copies model_options per run, so nothing leaks)."""
    guider = executor.class_obj
    state = find_state(guider.model_patcher)
    if state is not None:
        state.begin_run()
        options = guider.model_options.setdefault("transformer_options", {})
        options[STATE_KEY] = state
    return executor(*args, **kwargs)


def ensure_lifecycle(model) -> None:
    """Register the per-run wrapper on ``model`` (a clone the caller owns) unless its lineage has it."""
    import comfy.patcher_extension

    if not model.get_wrappers(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, STATE_KEY):
        model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, STATE_KEY, begin_run)
