"""LLM-guided expansion (arXiv 2407.12642), tuning-free: grow a canvas step by step, each new region sampled in a
window of fixed size from the global caption, its local caption and the known side of the window.

Per step: pre-fill the new strip from the canvas edge, VAE-encode the window, sample it with a latent noise mask
(the known cells are held, the new strip and a band of overlap regenerated), decode, shift the colours to the
context and blend the window back by the same mask. The captions reach the model as ComfyUI conditioning: the
global caption over the window and the local one held to the new strip by a conditioning area (``regional``), or
both in one prompt (``concat``), or either alone (the baselines). ComfyUI is imported inside the functions.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..tinyworld import expansion
from . import geometry

Tensor = torch.Tensor
CONDITIONING_MODES = ("regional", "concat", "global only", "local only")
# progress(steps done, total steps, canvas so far [H, W, C])
ProgressFn = Callable[[int, int, Tensor], None]
# text -> (cross-attention tokens [1, 77, C], pooled output or None), as CLIPTextEncode makes them
EncodeFn = Callable[[str], tuple[Tensor, Tensor | None]]


@dataclasses.dataclass(frozen=True)
class Settings:
    window: int = 512
    step: int = 256
    overlap: int = 32
    steps: int = 20
    cfg: float = 7.0
    sampler: str = "euler"
    scheduler: str = "normal"
    denoise: float = 1.0
    seed: int = 0
    conditioning: str = "regional"
    colour_match: bool = True
    max_pixels: int = geometry.MAX_CANVAS_PIXELS


@dataclasses.dataclass
class Result:
    canvas: Tensor  # [H, W, C]
    generated: Tensor  # [H, W]: how much of each pixel was generated (1 new, ramp in the overlap bands, 0 kept)
    info: list[dict[str, Any]]


def text_encoder(clip) -> EncodeFn:
    """``clip``'s prompt encoder, remembering each text: the global caption, the negative and the empty prompt are
    the same at every step of an expansion."""

    @functools.cache
    def encode(text: str) -> tuple[Tensor, Tensor | None]:
        tokens, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
        return tokens, pooled

    return encode


def _entry(tokens: Tensor, pooled: Tensor | None, **extra: Any) -> list:
    return [tokens, {**({"pooled_output": pooled} if pooled is not None else {}), **extra}]


def step_conditioning(encode: EncodeFn, mode: str, global_caption: str, local_caption: str, step: geometry.Step) -> list:
    """Positive ComfyUI conditioning of one step's window."""
    if mode == "global only":
        return [_entry(*encode(global_caption))]
    if mode == "local only":
        return [_entry(*encode(local_caption))]
    g_tokens, g_pooled = encode(global_caption)
    l_tokens, l_pooled = encode(local_caption)
    if mode == "concat":
        return [_entry(torch.cat([g_tokens, l_tokens], dim=1), g_pooled)]
    if mode != "regional":
        raise ValueError(f"conditioning: {mode!r} is not one of {', '.join(CONDITIONING_MODES)}")
    f = geometry.LATENT_FACTOR
    new, win = step.new, step.window
    area = (new.height // f, new.width // f, (new.top - win.top) // f, (new.left - win.left) // f)
    return [_entry(g_tokens, g_pooled), _entry(l_tokens, l_pooled, area=area, strength=1.0, set_area_to_bounds=False)]


def trained_conditioning(encode: EncodeFn, parts: expansion.Expansion, mode: str, global_caption: str,
                         local_caption: str, visual: Tensor | None) -> tuple[list, list]:
    """(positive, negative) for the built-in expansion model: its context is [global | local | visual tokens], the
    layout it was trained on; the negative has empty captions and no visual feature, as its dropout had."""
    if mode not in CONDITIONING_MODES:
        raise ValueError(f"conditioning: {mode!r} is not one of {', '.join(CONDITIONING_MODES)}")
    empty = encode("")[0].float()  # float, as expansion.encode_text gave the trainer
    g = empty if mode == "local only" else encode(global_caption)[0].float()
    loc = empty if mode == "global only" else encode(local_caption)[0].float()
    features = parts.projection.proj.in_features
    none = parts.projection(torch.zeros(1, features))
    with torch.no_grad():
        seen = none if visual is None else parts.projection(visual.reshape(1, features).float())
    return [[torch.cat([g, loc, seen], dim=1), {}]], [[torch.cat([empty, empty, none.detach()], dim=1), {}]]


def visual_feature(clip_vision, image: Tensor) -> Tensor:
    """The image encoder's embedding of the whole ``image`` [H, W, C] (CLIP Vision Encode squashes it, no crop)."""
    from ..tinyworld.encoder import image_embeds

    return image_embeds(clip_vision, image[None, ..., :3])


def is_inpainting(model) -> bool:
    """An inpainting-shaped MODEL (SD1.5-inpainting: the mask and the masked image concatenated to its input)."""
    return bool(getattr(model.model, "concat_keys", ()))


def inpaint_conditioning(vae, window_px: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """What core InpaintModelConditioning adds for an inpainting model: the window with the generated part set to
    grey, encoded, and the mask (the model sees it rounded, so the overlap band counts as known)."""
    masked = window_px.clone()
    masked[mask.round() > 0] = 0.5
    return {"concat_latent_image": vae.encode(masked[None, ..., :3]), "concat_mask": mask[None, None]}


def with_values(conditioning: list, values: dict[str, Any]) -> list:
    return [[tokens, {**extra, **values}] for tokens, extra in conditioning]


def expand(model, clip, vae, image: Tensor, global_caption: str, steps: Sequence[tuple[str, str]], settings: Settings,
           negative: str = "", progress: ProgressFn | None = None, clip_vision=None, global_image: Tensor | None = None
           ) -> Result:
    """Grow ``image`` [H, W, C] by one strip per ``(direction, local caption)`` in ``steps``. On the built-in
    expansion model, ``clip_vision`` gives its visual feature: of ``global_image`` when given, else of the
    canvas so far."""
    import comfy.model_management
    import comfy.sample

    canvas = image.float().cpu()
    generated = torch.zeros(canvas.shape[:2])
    h, w = canvas.shape[:2]
    for direction, _ in steps:  # refuse before any work: the whole plan must fit
        h, w = geometry.plan_step(h, w, direction, settings.step, settings.window).size
        geometry.check_canvas(h, w, settings.max_pixels)
    encode = text_encoder(clip)
    neg = [_entry(*encode(negative))]
    trained = expansion.find(model)
    grey = expansion.grey_latent(vae) if trained is not None else None
    info = []
    for i, (direction, caption) in enumerate(steps):
        comfy.model_management.throw_exception_if_processing_interrupted()
        step = geometry.plan_step(canvas.shape[0], canvas.shape[1], direction, settings.step, settings.window)
        visual = None
        if trained is not None and clip_vision is not None:
            visual = visual_feature(clip_vision, global_image if global_image is not None else canvas)
        canvas = geometry.prefill(canvas, step)
        grown = torch.zeros(step.size)
        top, left = step.offset
        grown[top : top + generated.shape[0], left : left + generated.shape[1]] = generated
        generated = grown
        window_px = canvas[step.window.rows(), step.window.cols()]
        mask = geometry.window_mask(step, settings.overlap)
        latent = vae.encode(window_px[None, ..., :3])
        noise = comfy.sample.prepare_noise(latent, settings.seed + i)
        if trained is not None:
            positive, negative_step = trained_conditioning(encode, trained, settings.conditioning, global_caption,
                                                           caption, visual)
            hard = geometry.latent_mask(mask).round()
            masked = latent * (1 - hard) + grey.view(1, -1, 1, 1) * hard
            extra = {"concat_latent_image": masked, "concat_mask": hard}
            positive, negative_step = with_values(positive, extra), with_values(negative_step, extra)
        else:
            positive = step_conditioning(encode, settings.conditioning, global_caption, caption, step)
            negative_step = neg
        if trained is None and is_inpainting(model):
            extra = inpaint_conditioning(vae, window_px, mask)
            positive, negative_step = with_values(positive, extra), with_values(neg, extra)
        sampled = comfy.sample.sample(
            model, noise, settings.steps, settings.cfg, settings.sampler, settings.scheduler, positive, negative_step, latent,
            denoise=settings.denoise, noise_mask=geometry.latent_mask(mask), disable_pbar=True, seed=settings.seed + i)
        decoded = vae.decode(sampled)[0].float().cpu()
        if settings.colour_match:
            decoded = geometry.colour_match(decoded, window_px, mask)
        canvas = geometry.composite(canvas, decoded, step, mask)
        win = generated[step.window.rows(), step.window.cols()]
        generated[step.window.rows(), step.window.cols()] = torch.maximum(win, mask)
        info.append({"step": i, "direction": direction, "caption": caption, "window": step.window.to_json(),
                     "new": step.new.to_json(), "canvas": {"height": step.size[0], "width": step.size[1]}})
        if progress is not None:
            progress(i + 1, len(steps), canvas)
    return Result(canvas, generated, info)
