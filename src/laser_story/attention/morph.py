"""LASER morph: per segment, one DDIM inversion of the keyframe with its features banked, then every
frame of the segment sampled in one batch from that same inverted noise with linearly interpolated text
embeddings (the source prompt as negative) while the bank is injected. The last frame's latent is the
next segment's keyframe.

Sampling goes through ComfyUI's own machinery (``comfy.sample.sample_custom``, its CFG guider, wrappers
and patches); ComfyUI is imported inside the functions so the module imports without a host.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable

import torch

from .. import controls
from .laser import ControlSettings, LaserState, SegmentControl, apply_injector, find_laser_state
from .sampling import Embedding, ProgressFn, StepCounter, conditioning, invert, schedule
from .state import FeatureBank, attach

Tensor = torch.Tensor


@dataclasses.dataclass
class SegmentResult:
    latents: Tensor  # [frames, 4, h, w], LATENT space
    alphas: list[float]
    code: str
    inverted: Tensor  # [1, 4, h, w], the shared inverted noise
    bank_bytes: int
    bank_entries: int
    fired: collections.Counter  # (event, step, layer or block) -> patch calls, capture and injection


def _pad_tokens(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Zero-pad the shorter token sequence (prompts longer than 75 tokens use several CLIP chunks)."""
    if a.shape[1] == b.shape[1]:
        return a, b
    length = max(a.shape[1], b.shape[1])
    pad = lambda t: torch.cat([t, t.new_zeros(t.shape[0], length - t.shape[1], t.shape[2])], dim=1)  # noqa: E731
    return pad(a), pad(b)


def interpolate(source: Embedding, target: Embedding, alphas: list[float]) -> Embedding:
    """Per-frame linear interpolation of the text embeddings: (1 - a) * source + a * target."""
    src, tgt = _pad_tokens(source.tokens, target.tokens)
    weights = torch.tensor(alphas, dtype=src.dtype, device=src.device).view(-1, 1, 1)
    tokens = (1 - weights) * src + weights * tgt
    pooled = None
    if source.pooled is not None and target.pooled is not None:
        w = weights.view(-1, 1)
        pooled = (1 - w) * source.pooled + w * target.pooled
    return Embedding(tokens, pooled)


def _repeat(embedding: Embedding, n: int) -> Embedding:
    pooled = None if embedding.pooled is None else embedding.pooled.expand(n, -1)
    return Embedding(embedding.tokens.expand(n, -1, -1), pooled)


def even_alphas(alphas: list[float], latents: Tensor) -> list[float]:
    """Weights at equal steps along the path the frames trace, read off the path's length at each sampled weight
    (linear between samples): where a small change of weight moves the image a lot, new weights crowd in."""
    steps = (latents[1:] - latents[:-1]).flatten(1).norm(dim=1).tolist()
    length = [0.0]
    for step in steps:
        length.append(length[-1] + step)
    if length[-1] <= 0.0:
        return list(alphas)
    out = []
    for j in range(len(alphas)):
        goal = length[-1] * j / (len(alphas) - 1)
        i = next((i for i in range(len(steps)) if length[i + 1] >= goal), len(steps) - 1)
        share = 0.0 if steps[i] <= 0.0 else (goal - length[i]) / steps[i]
        out.append(alphas[i] + (alphas[i + 1] - alphas[i]) * min(max(share, 0.0), 1.0))
    return out


def evenest_subset(latents: Tensor, count: int) -> list[int]:
    """Indices of ``count`` of the (weight-ordered) frames, the first and last included, whose consecutive steps
    have the least sum of squares: for a fixed path that is the most even spacing (dynamic programming)."""
    n = latents.shape[0]
    if count >= n:
        return list(range(n))
    flat = latents.flatten(1)
    cost = torch.cdist(flat, flat).pow(2).tolist()
    inf = float("inf")
    best = [[inf] * n for _ in range(count)]  # best[k][i]: least cost of k steps from frame 0 ending at frame i
    back = [[-1] * n for _ in range(count)]
    best[0][0] = 0.0
    for k in range(1, count):
        for i in range(1, n):
            for j in range(i):
                value = best[k - 1][j] + cost[j][i]
                if value < best[k][i]:
                    best[k][i], back[k][i] = value, j
    path, i = [n - 1], n - 1
    for k in range(count - 1, 0, -1):
        i = back[k][i]
        path.append(i)
    return path[::-1]


def sample_frames(model, noise_latent: Tensor, positive: Embedding, negative: Embedding, sigmas: Tensor, cfg: float, callback=None) -> Tensor:
    """Sample a batch of frames that all start from the same inverted latent, deterministically (DDIM)."""
    import comfy.sample
    import comfy.samplers

    frames = positive.tokens.shape[0]
    start = noise_latent.expand(frames, -1, -1, -1).contiguous()
    return comfy.sample.sample_custom(
        model, torch.zeros_like(start), cfg, comfy.samplers.sampler_object("euler"), sigmas,
        conditioning(positive.tokens, positive.pooled), conditioning(negative.tokens, negative.pooled),
        start, callback=callback, disable_pbar=True,
    )


def generate_keyframe(model, positive: Embedding, negative: Embedding, shape: tuple[int, ...], sigmas: Tensor, cfg: float, seed: int, callback=None) -> Tensor:
    """P0 from seeded noise when no keyframe image is given."""
    import comfy.sample
    import comfy.samplers

    latent = torch.zeros(shape)
    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample_custom(
        model, noise, cfg, comfy.samplers.sampler_object("euler"), sigmas,
        conditioning(positive.tokens, positive.pooled), conditioning(negative.tokens, negative.pooled),
        latent, callback=callback, disable_pbar=True, seed=seed,
    )


def sampling_passes(frames: int, even_spacing: bool) -> int:
    """How many times a segment samples its frames: a second pass at even weights needs inner frames."""
    return 2 if even_spacing and frames > 2 else 1


def run_segment(model, keyframe: Tensor, source: Embedding, target: Embedding, code: str, settings: ControlSettings,
                sigmas: Tensor, frames: int, cfg: float, bank: FeatureBank,
                invert_callback=None, sample_callback=None, frame_negative: Embedding | None = None,
                fade_negative: bool = False, even_spacing: bool = False) -> SegmentResult:
    """One segment Pi -> Pi+1: invert the keyframe with capture, then sample all frames with injection.

    With ``even_spacing`` the frames are sampled twice: at linear weights, then at weights spaced evenly along
    the path those frames traced (:func:`even_alphas`); of both passes, the frames with the most even steps are
    kept (:func:`evenest_subset`). A text embedding's weight does not move the image at a constant rate (a
    shape often holds, then flips), so linear weights give a still start and one large jump.

    The frames' negative is the source prompt (LASER's choice) unless ``frame_negative`` is given. With
    ``fade_negative`` it goes from the source prompt (alpha 0: positive and negative agree, so the first frame
    is the inversion's own reconstruction) to ``frame_negative`` (alpha 1) with the prompts' interpolation, so
    the late frames are not pushed away from everything the source shows, including what should stay.

    ``model`` must carry the LASER patches (see :func:`apply_injector`); the bank is emptied on exit,
    also when the run is interrupted.
    """
    steps = len(sigmas) - 1
    control = SegmentControl(code, settings, steps)
    alphas = control.alphas(frames)
    capture = LaserState("capture", bank, sigmas, settings=settings, control=control)
    inject = LaserState("inject", bank, sigmas, settings=settings, control=control)
    try:
        capture_model = model.clone()
        attach(capture_model, capture)
        inverted = invert(capture_model, keyframe, source, sigmas, invert_callback)
        bank_bytes, bank_entries = bank.nbytes, len(bank)
        inject_model = model.clone()
        attach(inject_model, inject)
        negative = frame_negative or source

        def sample(weights: list[float]) -> Tensor:
            negatives = interpolate(source, negative, weights) if fade_negative else _repeat(negative, len(weights))
            return sample_frames(inject_model, inverted, interpolate(source, target, weights), negatives, sigmas, cfg,
                                 sample_callback)

        latents = sample(alphas)
        if sampling_passes(frames, even_spacing) == 2:
            extra = even_alphas(alphas, latents)[1:-1]
            pool = sorted(zip(alphas + extra, [*latents, *sample(extra)], strict=True), key=lambda pair: pair[0])
            keep = evenest_subset(torch.stack([latent for _, latent in pool]), frames)
            alphas = [pool[i][0] for i in keep]
            latents = torch.stack([pool[i][1] for i in keep])
    finally:
        bank.clear()
    return SegmentResult(latents, alphas, code, inverted, bank_bytes, bank_entries, capture.fired + inject.fired)


@dataclasses.dataclass
class MorphResult:
    latents: Tensor  # all output frames, LATENT space
    segments: list[SegmentResult]
    keyframes: list[Tensor]  # the latent each segment was inverted from
    frame_info: list[str]


def run_morph(model, embeddings: list[Embedding], negative: Embedding, codes: list[str], keyframe: Tensor | None,
              frames: int, steps: int, cfg: float, scheduler: str = "ddim_uniform", seed: int = 0,
              latent_shape: tuple[int, int, int, int] = (1, 4, 64, 64), prompts: list[str] | None = None,
              progress: ProgressFn | None = None, bank_factory: Callable[[ControlSettings], FeatureBank] | None = None,
              frame_negative: Embedding | None = None, fade_negative: bool = False,
              even_spacing: bool = False) -> MorphResult:
    """The whole LASER animation. ``keyframe`` is a [1, 4, h, w] LATENT; when None, P0 is generated first.

    Segment k+1 starts from the exact latent of segment k's last frame, and its first frame (alpha 0, a
    reconstruction of that keyframe) is dropped so the hand-off is not shown twice.
    """
    if len(embeddings) < 2:
        raise ValueError(f"a morph needs at least 2 keyframe prompts, got {len(embeddings)}")
    if len(codes) != len(embeddings) - 1:
        raise ValueError(f"{len(codes)} control codes for {len(embeddings) - 1} segments; give one code per segment")
    if frames < 2:
        raise ValueError(f"frames per segment must be at least 2, got {frames}")
    resolved = controls.resolve(codes)
    state = find_laser_state(model)
    settings = state.settings if state is not None else ControlSettings()
    patched = model if state is not None else apply_injector(model, settings)
    sigmas = schedule(patched, scheduler, steps)
    make_bank = bank_factory or (lambda s: FeatureBank(torch.float16 if s.store_fp16 else torch.float32))
    # per segment: one inversion and each sampling pass, all of ``steps``; P0's generation when not given
    total = len(resolved) * (1 + sampling_passes(frames, even_spacing)) * steps + (steps if keyframe is None else 0)
    counter = StepCounter(progress, total)
    if keyframe is None:
        # P0 is sampled from seeded noise; the negative of the plan applies here only.
        keyframe = generate_keyframe(model, embeddings[0], negative, latent_shape, sigmas, cfg, seed, counter.callback(True))
    segments, keyframes, outputs, info = [], [], [], []
    names = prompts or [f"P{i}" for i in range(len(embeddings))]
    for k, code in enumerate(resolved):
        keyframes.append(keyframe)
        segment = run_segment(patched, keyframe, embeddings[k], embeddings[k + 1], code, settings, sigmas, frames, cfg,
                              make_bank(settings), counter.callback(False), counter.callback(True), frame_negative,
                              fade_negative, even_spacing)
        segments.append(segment)
        first = 0 if k == 0 else 1
        outputs.append(segment.latents[first:])
        for j in range(first, frames):
            info.append(f"segment {k} frame {j} control {code} alpha {segment.alphas[j]:.3f}: {names[k]} -> {names[k + 1]}")
        keyframe = segment.latents[-1:].clone()
    return MorphResult(torch.cat(outputs), segments, keyframes, info)
