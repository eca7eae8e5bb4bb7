"""Where each expansion step puts its window, and how the new region is pre-filled, blended and colour-matched.

Pure torch on one canvas image ``[H, W, C]`` (ComfyUI IMAGE values, 0..1). A step grows the canvas by ``step``
pixels on one side; its window is the new strip plus the nearest ``window - step`` pixels of the canvas along
the growth axis and the whole canvas across it, so a step costs the same however long the canvas has grown.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F  # noqa: N812

Tensor = torch.Tensor
DIRECTIONS = ("left", "right", "up", "down")
LATENT_FACTOR = 8  # SD1.x VAE downscale
MAX_CANVAS_PIXELS = 64 * 1024 * 1024  # float32 RGB canvas of 768 MB, plus one window of work at a time


@dataclasses.dataclass(frozen=True)
class Box:
    top: int
    left: int
    height: int
    width: int

    def rows(self) -> slice:
        return slice(self.top, self.top + self.height)

    def cols(self) -> slice:
        return slice(self.left, self.left + self.width)

    def to_json(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Step:
    """One step's geometry, in the coordinates of the grown canvas."""

    direction: str
    size: tuple[int, int]  # (H, W) after the step
    offset: tuple[int, int]  # where the old canvas sits in the new one (top, left)
    window: Box  # the region that is sampled
    new: Box  # the strip that did not exist before

    @property
    def horizontal(self) -> bool:
        return self.direction in ("left", "right")


def plan_step(height: int, width: int, direction: str, step: int, window: int) -> Step:
    """The geometry of growing a ``height`` x ``width`` canvas by ``step`` pixels towards ``direction``."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: {direction!r} is not one of {', '.join(DIRECTIONS)}")
    for name, value in (("step", step), ("window", window)):
        if value <= 0 or value % LATENT_FACTOR:
            raise ValueError(f"{name}: {value} must be a positive multiple of {LATENT_FACTOR}")
    if step > window:
        raise ValueError(f"step: {step} px is larger than the window ({window} px); the window must hold the new "
                         "strip and some of the canvas as context; use a step at most the window (half is typical)")
    if direction in ("left", "right"):
        new_h, new_w = height, width + step
        span = min(window, new_w)
        if direction == "right":
            return Step(direction, (new_h, new_w), (0, 0), Box(0, new_w - span, new_h, span), Box(0, width, new_h, step))
        return Step(direction, (new_h, new_w), (0, step), Box(0, 0, new_h, span), Box(0, 0, new_h, step))
    new_h, new_w = height + step, width
    span = min(window, new_h)
    if direction == "down":
        return Step(direction, (new_h, new_w), (0, 0), Box(new_h - span, 0, span, new_w), Box(height, 0, step, new_w))
    return Step(direction, (new_h, new_w), (step, 0), Box(0, 0, span, new_w), Box(0, 0, step, new_w))


def check_canvas(height: int, width: int, limit: int = MAX_CANVAS_PIXELS) -> None:
    if height * width > limit:
        raise ValueError(f"the canvas would be {width}x{height} = {height * width / 1e6:.1f} MP, over the limit of "
                         f"{limit / 1e6:.0f} MP (a {limit * 12 / 2**30:.1f} GB float32 image); expand in fewer steps "
                         "or with a smaller step")


def _distance_into_known(step: Step) -> Tensor:
    """Per window pixel: how far it lies from the new strip, on the known side (0 inside the strip)."""
    w = step.window
    n = w.width if step.horizontal else w.height
    idx = torch.arange(n, dtype=torch.float32)
    if step.direction == "right":
        seam = step.new.left - w.left
        dist = (seam - 1 - idx).clamp_min(-1) + 1
    elif step.direction == "left":
        seam = step.new.left + step.new.width - w.left
        dist = (idx - seam).clamp_min(-1) + 1
    elif step.direction == "down":
        seam = step.new.top - w.top
        dist = (seam - 1 - idx).clamp_min(-1) + 1
    else:
        seam = step.new.top + step.new.height - w.top
        dist = (idx - seam).clamp_min(-1) + 1
    return dist[None, :].expand(w.height, -1) if step.horizontal else dist[:, None].expand(-1, w.width)


def window_mask(step: Step, overlap: int) -> Tensor:
    """[h, w] in the window: 1 on the new strip, a linear ramp over ``overlap`` pixels of the known side, 0 beyond.
    It is both how much of each pixel is generated and how much of it the composite takes from the new image."""
    dist = _distance_into_known(step)
    if overlap <= 0:
        return (dist == 0).float()
    return (1.0 - dist / (overlap + 1)).clamp(0.0, 1.0)


def latent_mask(mask: Tensor) -> Tensor:
    """The pixel mask at latent resolution, [1, 1, h/8, w/8]: a latent cell is regenerated as much as its most
    generated pixel, so no cell straddling the seam keeps a half-old code."""
    return F.max_pool2d(mask[None, None], LATENT_FACTOR)


def prefill(canvas: Tensor, step: Step, band: int = 32, blur: int = 9) -> Tensor:
    """The grown canvas [H', W', C] with the old one in place and the new strip pre-filled by continuing the
    canvas edge: per row (or column) the median of the ``band`` pixels at the edge, smoothed across, so the sampler
    starts from the right palette and background bands run on."""
    h, w, c = canvas.shape
    out = canvas.new_zeros((*step.size, c))
    top, left = step.offset
    out[top : top + h, left : left + w] = canvas
    if step.horizontal:
        edge = canvas[:, -band:] if step.direction == "right" else canvas[:, :band]
        line = edge.median(dim=1).values  # [h, c]
        line = _smooth(line, blur)
        out[step.new.rows(), step.new.cols()] = line[:, None, :].expand(-1, step.new.width, -1)
    else:
        edge = canvas[-band:] if step.direction == "down" else canvas[:band]
        line = _smooth(edge.median(dim=0).values, blur)  # [w, c]
        out[step.new.rows(), step.new.cols()] = line[None, :, :].expand(step.new.height, -1, -1)
    return out


def _smooth(line: Tensor, size: int) -> Tensor:
    if size <= 1 or line.shape[0] < 2:
        return line
    pad = min(size // 2, line.shape[0] - 1)
    x = F.pad(line.T[None], (pad, pad), mode="replicate")
    return F.avg_pool1d(x, 2 * pad + 1, stride=1)[0].T


def colour_match(generated: Tensor, reference: Tensor, mask: Tensor, ring: int = 16) -> Tensor:
    """Shift the generated window's colours so that, on the known pixels nearest the seam, they average what the
    canvas has there (decoding drifts a little; a shift on the new side would show as a seam)."""
    known_near = (mask < 1) & (_ring(mask, ring) > 0)
    if not bool(known_near.any()):
        return generated
    shift = (reference[known_near] - generated[known_near]).mean(dim=0)
    return (generated + shift * (mask[..., None] > 0)).clamp(0.0, 1.0)


def _ring(mask: Tensor, width: int) -> Tensor:
    """Pixels within ``width`` of any generated pixel."""
    k = 2 * width + 1
    return F.max_pool2d((mask > 0).float()[None, None], k, stride=1, padding=width)[0, 0]


def composite(canvas: Tensor, generated: Tensor, step: Step, mask: Tensor) -> Tensor:
    """The grown canvas with the window blended in by ``mask`` (pixels where it is 0 keep their exact values)."""
    out = canvas.clone()
    win = out[step.window.rows(), step.window.cols()]
    m = mask[..., None].to(out.dtype)
    out[step.window.rows(), step.window.cols()] = win * (1 - m) + generated.to(out.dtype) * m
    return out
