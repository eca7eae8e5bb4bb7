"""LASER's attention policy: control codes turned into step and layer gates, and the two patches.

Layers are numbered the way ComfyUI numbers SD1.x/SD2.x self-attention layers (``transformer_index``:
input blocks 0-5, middle 6, output blocks 7-15), and the ResBlock injection point is an output block id,
so the defaults below mean exactly what the Plug-and-Play and MasaCtrl papers used on SD1.5:

* "0" texture: output block 4's ResBlock features for the first ``f_t`` of the steps and decoder
  self-attention Q/K (layers 8-15, PnP's ``up_blocks`` 1-3 choice) for the first ``qk_t``;
* "1" non-rigid: MasaCtrl K/V from the source for the steps from ``kv_t`` on (start step 4 of 50), layers
  from 10 on;
* "2" mixed: the "0" ResBlock injection early plus the "1" K/V injection late, interpolation capped at 0.8;
* "3" keep the previous segment's control.

Which injections a code uses is ``laser_story.controls``' table; the bank, chunking and run lifecycle are
the shared plumbing in ``state``. The patches are plain functions registered through public ModelPatcher
setters: an ``attn1_patch`` (runs before the self-attention projections, so replacing its hidden-state
inputs injects Q/K or K/V exactly) and an ``output_block_patch`` (replacing an output block's inputs makes
its ResBlock emit the source's features). With no active LASER state they pass their inputs through
untouched, so they stack with any other pack's patches.
"""

from __future__ import annotations

import dataclasses

import torch

from .. import controls as codes
from .state import RunState, active_state, attach, capture, ensure_lifecycle, find_state, source_like

Tensor = torch.Tensor


@dataclasses.dataclass(frozen=True)
class ControlSettings:
    """Thresholds (fractions of the sampling steps) and layer ranges of the injections."""

    f_t: float = 0.8
    qk_t: float = 0.5
    kv_t: float = 0.08
    qk_start_layer: int = 8
    kv_start_layer: int = 10
    conv_output_block: int = 4
    store_fp16: bool = True

    def __post_init__(self) -> None:
        for name in ("f_t", "qk_t", "kv_t"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a fraction of the steps between 0 and 1, got {value}")
        for name in ("qk_start_layer", "kv_start_layer", "conv_output_block"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class SegmentControl:
    """The gates of one segment: which step/layer gets which injection."""

    code: str
    settings: ControlSettings
    steps: int

    def _first_steps(self, fraction: float) -> int:
        return int(fraction * self.steps)

    def _uses(self, injection: str) -> bool:
        return injection in codes.INJECTIONS.get(self.code, ())

    @property
    def uses_conv(self) -> bool:
        return self._uses("conv")

    @property
    def uses_qk(self) -> bool:
        return self._uses("qk")

    @property
    def uses_kv(self) -> bool:
        return self._uses("kv")

    def conv_active(self, step: int, output_block: int) -> bool:
        return self.uses_conv and output_block == self.settings.conv_output_block and step < self._first_steps(self.settings.f_t)

    def qk_active(self, step: int, layer: int) -> bool:
        return self.uses_qk and layer >= self.settings.qk_start_layer and step < self._first_steps(self.settings.qk_t)

    def kv_active(self, step: int, layer: int) -> bool:
        return self.uses_kv and layer >= self.settings.kv_start_layer and step >= self._first_steps(self.settings.kv_t)

    def attn_needed(self, step: int, layer: int) -> bool:
        """Whether the inversion must bank this self-attention layer's input at this step."""
        return self.qk_active(step, layer) or self.kv_active(step, layer)

    def alphas(self, frames: int) -> list[float]:
        """Interpolation weight per frame: linspace(0, 1), scaled by the code's cap (0.8 for the mixed control)."""
        if frames < 2:
            raise ValueError(f"a segment needs at least 2 frames, got {frames}")
        cap = codes.alpha_cap(self.code)
        return [cap * j / (frames - 1) for j in range(frames)]


@dataclasses.dataclass(kw_only=True)
class LaserState(RunState):
    """LASER's run state: the injector's settings, and during a segment the segment's control."""

    settings: ControlSettings = ControlSettings()
    control: SegmentControl | None = None

    @property
    def active(self) -> bool:
        return super().active and self.control is not None


def laser_attn1_patch(n: Tensor, context: Tensor, value: Tensor, extra_options: dict) -> tuple[Tensor, Tensor, Tensor]:
    """Bank or inject the self-attention input of one transformer block.

    Q = to_q(n), K = to_k(context), V = to_v(value): handing the source's hidden states in place of
    ``n`` and ``context`` injects Q/K (Plug-and-Play), in place of ``context`` and ``value`` K/V (MasaCtrl).
    """
    found = active_state(extra_options, LaserState)
    if found is None:
        return n, context, value
    state, step = found
    layer = extra_options["transformer_index"]
    key = (layer, extra_options.get("block_index", 0))
    cond_or_uncond = extra_options["cond_or_uncond"]
    control = state.control
    if state.phase == "capture":
        if control.attn_needed(step, layer):
            capture(state.bank, "attn", step, key, n, cond_or_uncond)
            state.fired[("capture_attn", step, layer)] += 1
        return n, context, value
    qk, kv = control.qk_active(step, layer), control.kv_active(step, layer)
    if not (qk or kv):
        return n, context, value
    source = source_like(state.bank, "attn", step, key, n, cond_or_uncond)
    if source is None:
        return n, context, value
    if qk:
        state.fired[("qk", step, layer)] += 1
        return source, source, value
    state.fired[("kv", step, layer)] += 1
    return n, source, source


def laser_output_block_patch(h: Tensor, hsp: Tensor, transformer_options: dict) -> tuple[Tensor, Tensor]:
    """Bank or inject the inputs of the configured output block, so its ResBlock yields the source's features."""
    found = active_state(transformer_options, LaserState)
    if found is None:
        return h, hsp
    state, step = found
    block = transformer_options.get("block", ("", -1))[1]
    if not state.control.conv_active(step, block):
        return h, hsp
    cond_or_uncond = transformer_options["cond_or_uncond"]
    if state.phase == "capture":
        capture(state.bank, "conv_h", step, block, h, cond_or_uncond)
        capture(state.bank, "conv_skip", step, block, hsp, cond_or_uncond)
        state.fired[("capture_conv", step, block)] += 1
        return h, hsp
    source_h = source_like(state.bank, "conv_h", step, block, h, cond_or_uncond)
    source_skip = source_like(state.bank, "conv_skip", step, block, hsp, cond_or_uncond)
    if source_h is None or source_skip is None:
        return h, hsp
    state.fired[("conv", step, block)] += 1
    return source_h, source_skip


def find_laser_state(model) -> LaserState | None:
    """The LaserState a (possibly patched) ModelPatcher carries, if any."""
    return find_state(model, LaserState)


def apply_injector(model, settings: ControlSettings):
    """A clone of ``model`` with the LASER patches registered; the input model is left untouched."""
    patched = model.clone()
    if find_laser_state(patched) is None:
        patched.set_model_attn1_patch(laser_attn1_patch)
        patched.set_model_output_block_patch(laser_output_block_patch)
        ensure_lifecycle(patched)
    attach(patched, LaserState(settings=settings))
    return patched
