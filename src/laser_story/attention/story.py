"""The story pipeline's attention patches (StoryGPT-V's Char-LDM mechanisms, tuning-free, on any SD1.x UNet).

* **Region holding** (cross-attention): in the positive chunk, a character's tokens (name and description) are
  visible only to the image cells of its region in that frame; elsewhere their logits get ``NEG``. Its tokens
  cannot draw it where it does not stand, and no other character's tokens reach into its region. ``hold_boost``
  (a log-weight) may favour them inside.
* **Consistent self-attention** (decoder self-attention, in the spirit of StoryDiffusion): a character's *anchor*
  frame (the first it appears in, or its reference image) banks the keys and values of its region, per step,
  layer and cond/uncond chunk; every other frame the character is in adds them to its own keys, visible only
  from that character's region. The bank holds at most ``max_shared_tokens`` tokens per character and layer,
  so memory does not grow with the number of frames.

Both are replace patches (``attn1``/``attn2``) on each transformer block: ComfyUI lets one replace exist per
block, so a replace already registered there (another pack's) is kept and called wherever these are not
active, and ``attn1_patch``/``attn2_patch`` lists of other packs run before them as usual. State lives in the
shared :class:`~.state.RunState` plumbing: attached to a clone, reset per sampling run, found in
``transformer_options``. ComfyUI is imported inside the functions.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..story.layout import Box, box_mask
from .state import RunState, active_state, attach, ensure_lifecycle, find_state

Tensor = torch.Tensor
NEG = -10000.0  # an additive logit that removes a token (finite: safe in float16 and in every attention kernel)


@dataclasses.dataclass(frozen=True)
class StoryFrame:
    """One latent of the batch being sampled: which context tokens belong to whom, where each one stands,
    which characters this frame is the anchor of (banks) and which it takes from the bank."""

    tokens: dict[str, tuple[int, ...]]
    boxes: dict[str, Box]
    anchors: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class StorySettings:
    hold: bool = True
    hold_boost: float = 0.0
    hold_until: float = 1.0  # fraction of the steps with region holding
    consistency: bool = True
    share_from: float = 0.1  # consistent self-attention from this fraction of the steps on
    share_blocks: tuple[str, ...] = ("output",)
    max_shared_tokens: int = 256

    def __post_init__(self) -> None:
        for name in ("hold_until", "share_from"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a fraction of the steps between 0 and 1, got {getattr(self, name)}")
        if self.max_shared_tokens < 1:
            raise ValueError(f"max_shared_tokens must be 1 or more, got {self.max_shared_tokens}")


@dataclasses.dataclass(kw_only=True)
class StoryState(RunState):
    settings: StorySettings = StorySettings()
    frames: tuple[StoryFrame, ...] = ()
    context_length: int = 77  # tokens of one positive prompt (the host may tile the context to a multiple)
    _masks: dict = dataclasses.field(default_factory=dict)

    @property
    def active(self) -> bool:
        return super().active and bool(self.frames)

    @property
    def steps(self) -> int:
        return 0 if self.sigmas is None else len(self.sigmas) - 1

    def mask(self, box: Box, height: int, width: int) -> Tensor:
        key = (box, height, width)
        if key not in self._masks:
            self._masks[key] = box_mask(box, height, width).flatten()
        return self._masks[key]


def _grid(extra: dict, tokens: int) -> tuple[int, int] | None:
    shape = extra.get("activations_shape")
    if shape is None or shape[-2] * shape[-1] != tokens:
        return None
    return int(shape[-2]), int(shape[-1])


def hold_bias(state: StoryState, cond_or_uncond: list[int], batch: int, height: int, width: int, context: int,
              device, dtype) -> Tensor | None:
    """Additive logits [batch, height*width, context] that hold each character's tokens to its region (positive
    chunks only, every tiled copy of the prompt), or None when no frame holds anything."""
    per = batch // len(cond_or_uncond)
    if per != len(state.frames):
        return None
    copies = max(1, context // state.context_length)
    bias = None
    for c, kind in enumerate(cond_or_uncond):
        if kind != 0:
            continue
        for f, frame in enumerate(state.frames):
            for name, tokens in frame.tokens.items():
                if not tokens or name not in frame.boxes:
                    continue
                if bias is None:
                    bias = torch.zeros(batch, height * width, context, device=device, dtype=dtype)
                inside = state.mask(frame.boxes[name], height, width).to(device)
                column = torch.where(inside > 0, state.settings.hold_boost, NEG).to(dtype)
                index = torch.tensor([t + j * state.context_length for j in range(copies) for t in tokens
                                      if t + j * state.context_length < context], device=device)  # fmt: skip
                bias[c * per + f][:, index] = column[:, None]
    return bias


class _Replace:
    """A replace patch for one block key that defers to the replace it displaced wherever it is not active.
    ``__deepcopy__`` returns itself: ``clone()`` deep-copies model_options, and the patch holds no run state."""

    def __init__(self, previous=None):
        self.previous = previous

    def __deepcopy__(self, memo):
        return self

    def fallback(self, q: Tensor, k: Tensor, v: Tensor, extra: dict) -> Tensor:
        if self.previous is not None:
            return self.previous(q, k, v, extra)
        from comfy.ldm.modules.attention import optimized_attention

        return optimized_attention(q, k, v, extra["n_heads"], attn_precision=extra.get("attn_precision"))


class HoldReplace(_Replace):
    def __call__(self, q: Tensor, k: Tensor, v: Tensor, extra: dict) -> Tensor:
        found = active_state(extra, StoryState)
        if found is None or not found[0].settings.hold:
            return self.fallback(q, k, v, extra)
        state, step = found
        grid = _grid(extra, q.shape[1])
        if grid is None or step >= int(round(state.settings.hold_until * state.steps)):
            return self.fallback(q, k, v, extra)
        bias = hold_bias(state, extra["cond_or_uncond"], q.shape[0], *grid, k.shape[1], q.device, q.dtype)
        if bias is None:
            return self.fallback(q, k, v, extra)
        from comfy.ldm.modules.attention import optimized_attention_masked

        state.fired[("hold", step)] += 1
        return optimized_attention_masked(q, k, v, extra["n_heads"], mask=bias, attn_precision=extra.get("attn_precision"))


def _spread(index: Tensor, limit: int) -> Tensor:
    """At most ``limit`` of ``index``, evenly spaced (deterministic, covers the whole region)."""
    if index.numel() <= limit:
        return index
    return index[torch.linspace(0, index.numel() - 1, limit).round().long()]


class ShareReplace(_Replace):
    def __call__(self, q: Tensor, k: Tensor, v: Tensor, extra: dict) -> Tensor:
        found = active_state(extra, StoryState)
        block = extra.get("block", ("", -1))
        if found is None or not found[0].settings.consistency or block[0] not in found[0].settings.share_blocks:
            return self.fallback(q, k, v, extra)
        state, step = found
        grid = _grid(extra, q.shape[1])
        cond_or_uncond = extra["cond_or_uncond"]
        per = q.shape[0] // len(cond_or_uncond)
        if grid is None or per != len(state.frames) or step < int(state.settings.share_from * state.steps):
            return self.fallback(q, k, v, extra)
        layer = (block[0], block[1], extra.get("block_index", 0))
        bank = state.bank
        if state.phase == "capture":
            for c, kind in enumerate(cond_or_uncond):
                for f, frame in enumerate(state.frames):
                    for name in frame.anchors:
                        cells = _spread(torch.nonzero(state.mask(frame.boxes[name], *grid)).flatten(),
                                        state.settings.max_shared_tokens).to(k.device)
                        bank.put(f"k:{name}", step, layer, kind, k[c * per + f, cells][None])
                        bank.put(f"v:{name}", step, layer, kind, v[c * per + f, cells][None])
                        state.fired[("bank", name)] += 1
        out = self.fallback(q, k, v, extra)
        from comfy.ldm.modules.attention import optimized_attention_masked

        heads = extra["n_heads"]
        for c, kind in enumerate(cond_or_uncond):
            for f, frame in enumerate(state.frames):
                keys, values, biases = [k[c * per + f]], [v[c * per + f]], [torch.zeros(q.shape[1], k.shape[1])]
                for name in frame.reads:
                    bk, bv = bank.get(f"k:{name}", step, layer, kind), bank.get(f"v:{name}", step, layer, kind)
                    if bk is None or bv is None or name not in frame.boxes:
                        continue
                    keys.append(bk[0].to(k.device, k.dtype))
                    values.append(bv[0].to(v.device, v.dtype))
                    inside = state.mask(frame.boxes[name], *grid)
                    biases.append(torch.where(inside > 0, 0.0, NEG)[:, None].expand(-1, bk.shape[1]))
                    state.fired[("share", name)] += 1
                if len(keys) == 1:
                    continue
                row = c * per + f
                bias = torch.cat(biases, 1)[None].to(q.device, q.dtype)
                out[row : row + 1] = optimized_attention_masked(
                    q[row : row + 1], torch.cat(keys)[None], torch.cat(values)[None], heads, mask=bias,
                    attn_precision=extra.get("attn_precision"))
        return out


def transformer_keys(model) -> list[tuple[str, int, int]]:
    """(block, id, index) of every transformer block of the UNet, as ComfyUI keys replace patches."""
    from comfy.ldm.modules.attention import SpatialTransformer

    unet = model.model.diffusion_model
    keys = []
    for name, blocks in (("input", unet.input_blocks), ("middle", [unet.middle_block]), ("output", unet.output_blocks)):
        for number, block in enumerate(blocks):
            for module in block:
                if isinstance(module, SpatialTransformer):
                    keys += [(name, number, t) for t in range(len(module.transformer_blocks))]
    return keys


def find_story_state(model) -> StoryState | None:
    return find_state(model, StoryState)


def apply_story_attention(model, settings: StorySettings) -> Any:
    """A clone of ``model`` with the story patches on every transformer block and a fresh StoryState attached."""
    patched = model.clone()
    if find_story_state(patched) is None:
        replaces = patched.model_options.get("transformer_options", {}).get("patches_replace", {})
        for key in transformer_keys(patched):
            patched.set_model_attn1_replace(ShareReplace(replaces.get("attn1", {}).get(key)), *key)
            patched.set_model_attn2_replace(HoldReplace(replaces.get("attn2", {}).get(key)), *key)
        ensure_lifecycle(patched)
    attach(patched, StoryState(settings=settings))
    return patched
