"""LASER control codes turned into concrete step and layer gates.

Layers are numbered the way ComfyUI numbers SD1.x/SD2.x self-attention layers (``transformer_index``:
input blocks 0-5, middle 6, output blocks 7-15), and the ResBlock injection point is an output block id,
so the defaults below mean exactly what the Plug-and-Play and MasaCtrl papers used on SD1.5:

* "0" texture: output block 4's ResBlock features for the first ``f_t`` of the steps and decoder
  self-attention Q/K (layers 8-15, PnP's ``up_blocks`` 1-3 choice) for the first ``qk_t``;
* "1" non-rigid: MasaCtrl K/V from the source for the steps from ``kv_t`` on (start step 4 of 50), layers
  from 10 on;
* "2" mixed: the "0" ResBlock injection early plus the "1" K/V injection late, interpolation capped at 0.8;
* "3" keep the previous segment's control.
"""

from __future__ import annotations

import dataclasses

MIXED_ALPHA_CAP = 0.8


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

    @property
    def uses_conv(self) -> bool:
        return self.code in ("0", "2")

    @property
    def uses_qk(self) -> bool:
        return self.code == "0"

    @property
    def uses_kv(self) -> bool:
        return self.code in ("1", "2")

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
        """Interpolation weight per frame: linspace(0, 1), scaled by 0.8 for the mixed control."""
        if frames < 2:
            raise ValueError(f"a segment needs at least 2 frames, got {frames}")
        cap = MIXED_ALPHA_CAP if self.code == "2" else 1.0
        return [cap * j / (frames - 1) for j in range(frames)]


def resolve_codes(codes: list[str] | tuple[str, ...]) -> list[str]:
    """Replace each "3" (keep previous) with the code in force before it."""
    resolved: list[str] = []
    for i, code in enumerate(codes):
        if code == "3":
            if not resolved:
                raise ValueError("control code '3' (keep previous) cannot open the plan: segment 0 has no previous control")
            resolved.append(resolved[-1])
        elif code in ("0", "1", "2"):
            resolved.append(code)
        else:
            raise ValueError(f"control code {code!r} of segment {i} is not one of 0, 1, 2, 3")
    return resolved
