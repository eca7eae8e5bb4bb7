"""Feature capture during inversion and injection during frame sampling, as ComfyUI patch callables.

The patches are plain functions registered through public ModelPatcher setters: an ``attn1_patch``
(runs before the self-attention projections, so replacing its hidden-state inputs injects Q/K or K/V
exactly) and an ``output_block_patch`` (replacing an output block's inputs makes its ResBlock emit the
source's features). Everything they need lives in a :class:`LaserState` under
``transformer_options["laser_story"]``; with no state, or a state in the ``idle`` phase, they pass
their inputs through untouched, so they stack with any other pack's patches.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import torch

from .control import ControlSettings, SegmentControl

STATE_KEY = "laser_story"

Tensor = torch.Tensor


class FeatureBank:
    """Source features per (kind, step, layer, cond/uncond chunk); only what the control needs."""

    def __init__(self, store_dtype: torch.dtype = torch.float16):
        self.store_dtype = store_dtype
        self._features: dict[tuple[str, int, Any, int], Tensor] = {}

    def put(self, kind: str, step: int, layer: Any, chunk: int, value: Tensor) -> None:
        self._features[(kind, step, layer, chunk)] = value.detach().to(self.store_dtype, copy=True)

    def get(self, kind: str, step: int, layer: Any, chunk: int) -> Tensor | None:
        """The chunk's own source feature, else the conditional one (inversion runs at cfg 1)."""
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
class LaserState:
    """Run state reached by the patches; ``phase`` is ``idle``, ``capture`` or ``inject``.

    ``sigmas`` is the frame-sampling schedule: a patch finds its step by matching the current sigma to
    it, which works for the inversion (it evaluates the model at the same sigmas, in reverse order)
    and the frame sampling alike. Deep copies return the same object, because ComfyUI 0.3.75 deep-copies
    ``model_options`` on every ``clone()`` and a copied bank would silently stop being shared.
    """

    settings: ControlSettings
    phase: str = "idle"
    control: SegmentControl | None = None
    bank: FeatureBank | None = None
    sigmas: Tensor | None = None
    fired: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def __deepcopy__(self, memo: dict) -> LaserState:
        return self

    def begin_run(self) -> None:
        """Reset per-sampling-run bookkeeping (the bank belongs to the segment and is kept)."""
        self.fired.clear()

    def step_of(self, sigma: Tensor) -> int | None:
        """Index of ``sigma`` in the sampling schedule, or None when this run uses another schedule."""
        if self.sigmas is None:
            return None
        schedule = self.sigmas[:-1].to(sigma.device, torch.float32)
        diff = (schedule - sigma.reshape(-1)[0].float()).abs()
        step = int(torch.argmin(diff))
        return step if diff[step] <= 1e-4 * max(1.0, float(schedule[step])) else None


def _active_state(options: dict) -> tuple[LaserState, int] | None:
    state = options.get(STATE_KEY)
    if not isinstance(state, LaserState) or state.phase == "idle" or state.bank is None or state.control is None:
        return None
    sigmas = options.get("sigmas")
    if sigmas is None:
        return None
    step = state.step_of(sigmas)
    return None if step is None else (state, step)


def _chunks(x: Tensor, cond_or_uncond: list[int]) -> list[tuple[int, Tensor]]:
    """Split a UNet batch into its (cond/uncond kind, frames) chunks, in the order ComfyUI batched them."""
    per_chunk = x.shape[0] // len(cond_or_uncond)
    return [(kind, x[i * per_chunk:(i + 1) * per_chunk]) for i, kind in enumerate(cond_or_uncond)]


def _source_like(bank: FeatureBank, kind: str, step: int, layer: Any, x: Tensor, cond_or_uncond: list[int]) -> Tensor | None:
    """The banked source feature laid out like ``x``: per chunk kind, broadcast over that chunk's frames."""
    parts = []
    for chunk, frames in _chunks(x, cond_or_uncond):
        source = bank.get(kind, step, layer, chunk)
        if source is None:
            return None
        parts.append(source.to(x.device, x.dtype).expand(frames.shape[0], *source.shape[1:]))
    return torch.cat(parts)


def _capture(bank: FeatureBank, kind: str, step: int, layer: Any, x: Tensor, cond_or_uncond: list[int]) -> None:
    for chunk, frames in _chunks(x, cond_or_uncond):
        bank.put(kind, step, layer, chunk, frames[:1])


def laser_attn1_patch(n: Tensor, context: Tensor, value: Tensor, extra_options: dict) -> tuple[Tensor, Tensor, Tensor]:
    """Bank or inject the self-attention input of one transformer block.

    Q = to_q(n), K = to_k(context), V = to_v(value): handing the source's hidden states in place of
    ``n`` and ``context`` injects Q/K (Plug-and-Play), in place of ``context`` and ``value`` K/V (MasaCtrl).
    """
    found = _active_state(extra_options)
    if found is None:
        return n, context, value
    state, step = found
    layer = extra_options["transformer_index"]
    key = (layer, extra_options.get("block_index", 0))
    cond_or_uncond = extra_options["cond_or_uncond"]
    control = state.control
    if state.phase == "capture":
        if control.attn_needed(step, layer):
            _capture(state.bank, "attn", step, key, n, cond_or_uncond)
            state.fired[("capture_attn", step, layer)] += 1
        return n, context, value
    qk, kv = control.qk_active(step, layer), control.kv_active(step, layer)
    if not (qk or kv):
        return n, context, value
    source = _source_like(state.bank, "attn", step, key, n, cond_or_uncond)
    if source is None:
        return n, context, value
    if qk:
        state.fired[("qk", step, layer)] += 1
        return source, source, value
    state.fired[("kv", step, layer)] += 1
    return n, source, source


def laser_output_block_patch(h: Tensor, hsp: Tensor, transformer_options: dict) -> tuple[Tensor, Tensor]:
    """Bank or inject the inputs of the configured output block, so its ResBlock yields the source's features."""
    found = _active_state(transformer_options)
    if found is None:
        return h, hsp
    state, step = found
    block = transformer_options.get("block", ("", -1))[1]
    if not state.control.conv_active(step, block):
        return h, hsp
    cond_or_uncond = transformer_options["cond_or_uncond"]
    if state.phase == "capture":
        _capture(state.bank, "conv_h", step, block, h, cond_or_uncond)
        _capture(state.bank, "conv_skip", step, block, hsp, cond_or_uncond)
        state.fired[("capture_conv", step, block)] += 1
        return h, hsp
    source_h = _source_like(state.bank, "conv_h", step, block, h, cond_or_uncond)
    source_skip = _source_like(state.bank, "conv_skip", step, block, hsp, cond_or_uncond)
    if source_h is None or source_skip is None:
        return h, hsp
    state.fired[("conv", step, block)] += 1
    return source_h, source_skip


def reset_state_per_run(executor, *args, **kwargs):
    """OUTER_SAMPLE wrapper: every sampling run starts with fresh bookkeeping."""
    state = executor.class_obj.model_options.get("transformer_options", {}).get(STATE_KEY)
    if isinstance(state, LaserState):
        state.begin_run()
    return executor(*args, **kwargs)


def find_state(model) -> LaserState | None:
    """The LaserState a (possibly patched) ModelPatcher carries, if any."""
    state = model.model_options.get("transformer_options", {}).get(STATE_KEY)
    return state if isinstance(state, LaserState) else None


def apply_injector(model, settings: ControlSettings):
    """A clone of ``model`` with the LASER patches registered; the input model is left untouched."""
    import comfy.patcher_extension

    patched = model.clone()
    if find_state(patched) is None:
        patched.set_model_attn1_patch(laser_attn1_patch)
        patched.set_model_output_block_patch(laser_output_block_patch)
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, STATE_KEY, reset_state_per_run)
    set_state(patched, LaserState(settings))
    return patched


def set_state(model, state: LaserState) -> None:
    """Put ``state`` on a model clone, copying the transformer_options dict so other clones keep theirs."""
    options = dict(model.model_options.get("transformer_options", {}))
    options[STATE_KEY] = state
    model.model_options["transformer_options"] = options
