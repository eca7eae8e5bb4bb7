"""A story plan mapped into the model's input space (``prepare``), and one frame per sentence sampled from it
(``sample``) with the story attention patches: fused character embeddings, region holding and consistent
self-attention, each switchable.

Frames are sampled in order, ``batch`` at a time. A character's anchor is the first frame it appears in (or
its reference image, DDIM-inverted once), which banks its region's self-attention features; later frames take
them from the bank, so the consistency context is bounded by the number of characters, not of frames.
ComfyUI is imported inside the functions.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..attention.sampling import Embedding, StepCounter, conditioning, invert, schedule
from ..attention.state import FeatureBank
from ..attention.story import StoryFrame, StorySettings, apply_story_attention, find_story_state
from ..llm.language import PRONOUNS, words
from ..llm.tasks.story import StoryPlan
from . import layout, prompts
from .fuser import CharFuser, image_features

Tensor = torch.Tensor
FULL_IMAGE = layout.Box(0.0, 0.0, 1.0, 1.0)
# progress(steps done, steps of the whole story, x0 preview latent or None)
ProgressFn = Callable[[int, int, Tensor | None], None]


class StoryError(ValueError):
    """Story input the pipeline cannot use; the message names the input and the fix."""


@dataclasses.dataclass
class FrameInput:
    """One frame as the sampler consumes it."""

    index: int
    sentence: str
    prompt: str
    tokens: Tensor  # [1, T, D] encoded prompt
    pooled: Tensor | None
    fused: Tensor | None  # [1, T, D] with the characters' reference features fused into their name tokens
    spans: dict[str, dict[str, list[int]]]
    places: dict[str, str]
    notes: list[str]

    def info(self) -> dict[str, Any]:
        return {"frame": self.index, "sentence": self.sentence, "prompt": self.prompt, "characters": list(self.places),
                "places": self.places, "boxes": {n: layout.place_box(p).to_json() for n, p in self.places.items()},
                "fused": self.fused is not None, "notes": self.notes}  # fmt: skip


@dataclasses.dataclass
class StoryInput:
    """The Story LLM Mapper's output: the plan, every frame's conditioning and the reference images by name."""

    plan: StoryPlan
    frames: list[FrameInput]
    references: dict[str, Tensor]  # name -> IMAGE [H, W, 3]
    descriptions: dict[str, str]


def unresolved_pronouns(sentence: str, mentions: Sequence[str]) -> list[str]:
    """Pronouns of ``sentence`` the plan resolves to no one (kept as written, flagged)."""
    left = [m.lower() for m in mentions]
    out = []
    for word, _, _ in words(sentence):
        lowered = word.lower()
        if lowered in PRONOUNS and lowered not in ("it", "its", "itself"):
            if lowered in left:
                left.remove(lowered)
            else:
                out.append(word)
    return out


def frame_places(plan: StoryPlan) -> list[layout.FrameLayout]:
    stated = [(f.characters, layout.places_in(f.text, f.characters)) for f in plan.frames]
    try:
        return layout.story_layout(stated)
    except layout.LayoutError as exc:
        raise StoryError(f"story: {exc}") from None


def reference_features(references: dict[str, Tensor], clip_vision, fuser: CharFuser | None) -> dict[str, Tensor]:
    """Each reference image's fuser feature (``fuser.image_features``), checked against the fuser's size."""
    if clip_vision is None or fuser is None or not references:
        return {}
    out = {}
    for name, image in references.items():
        out[name] = image_features(clip_vision, image[None])[0]
        fuser.check_image_dim(out[name].numel())
    return out


PROMPT_STYLES = ("sentence", "caption")


def prepare(plan: StoryPlan, clip, references: dict[str, Tensor] | None = None, clip_vision=None,
            fuser: CharFuser | None = None, prompt_style: str = "sentence") -> StoryInput:
    """Encode every frame of ``plan``: prompt with descriptions and setting, token spans, layout, fused tokens.

    ``prompt_style``: ``sentence`` is the resolved sentence with each character's description after its name;
    ``caption`` says only who stands where in which setting (``prompts.layout_segments``)."""
    if prompt_style not in PROMPT_STYLES:
        raise StoryError(f"prompt_style: {prompt_style!r} is not one of {', '.join(PROMPT_STYLES)}")
    references = dict(references or {})
    known = {c.name for c in plan.characters}
    for name in references:
        if name not in known:
            raise StoryError(f"reference_names: {name!r} has a reference image but is not a character of the story "
                             f"({', '.join(sorted(known)) or 'none found'}); fix the name or remove the image")
    descriptions = {c.name: c.description for c in plan.characters}
    features = reference_features(references, clip_vision, fuser)
    frames = []
    for i, (frame, placed) in enumerate(zip(plan.frames, frame_places(plan), strict=True)):
        if prompt_style == "caption":
            segments = prompts.layout_segments(placed.places, descriptions, frame.setting)
        else:
            segments = prompts.frame_segments(frame.text, frame.characters, descriptions, frame.setting)
        tokens, pooled, spans = prompts.encode(clip, segments)
        fused = None
        positions = {end: features[n] for n in frame.characters if n in features for end in spans.get(n, {}).get("ends", ())}
        if fuser is not None and positions:
            with torch.no_grad():
                fused = fuser.fuse(tokens[0], positions)[None]
        notes = [f"unresolved pronoun {p!r} kept as written" for p in unresolved_pronouns(frame.sentence, [r.mention for r in frame.references])]
        notes += list(placed.notes)
        frames.append(FrameInput(i, frame.sentence, prompts.plain_prompt(segments), tokens.cpu(), None if pooled is None else pooled.cpu(),
                                 fused, spans, placed.places, notes))  # fmt: skip
    return StoryInput(plan, frames, references, descriptions)


@dataclasses.dataclass(frozen=True)
class SampleOptions:
    steps: int = 20
    cfg: float = 5.0
    sampler: str = "euler"
    scheduler: str = "normal"
    seed: int = 0
    width: int = 512
    height: int = 512
    batch: int = 4
    fuse: bool = True
    fuse_from: float = 0.5  # fraction of the steps on plain text before the fused embeddings take over
    attention: StorySettings = StorySettings()
    negative: str = ""


def _pad(tensors: list[Tensor], empty: Tensor) -> list[Tensor]:
    """Equal token counts for one batch: shorter prompts get empty-prompt chunks appended (as ConditioningConcat)."""
    longest = max(t.shape[1] for t in tensors)
    return [torch.cat([t, *[empty] * ((longest - t.shape[1]) // empty.shape[1])], 1) for t in tensors]


def _positive(chunk: list[FrameInput], empty: Tensor, fuse: bool, fuse_from: float) -> tuple[list, int]:
    plain = _pad([f.tokens for f in chunk], empty)
    pooled = [f.pooled for f in chunk]
    extra = {"pooled_output": torch.cat(pooled)} if all(p is not None for p in pooled) else {}
    tokens = torch.cat(plain)
    if not fuse or all(f.fused is None for f in chunk):
        return [[tokens, extra]], tokens.shape[1]
    fused = torch.cat(_pad([f.fused if f.fused is not None else f.tokens for f in chunk], empty))
    if fuse_from <= 0:
        return [[fused, extra]], tokens.shape[1]
    return [[tokens, {**extra, "start_percent": 0.0, "end_percent": fuse_from}],
            [fused, {**extra, "start_percent": fuse_from, "end_percent": 1.0}]], tokens.shape[1]


def anchors(story: StoryInput) -> dict[str, int]:
    """Each character's anchor frame: the first it is in (characters with a reference image are anchored there)."""
    found: dict[str, int] = {}
    for frame in story.frames:
        for name in frame.places:
            if name not in story.references:
                found.setdefault(name, frame.index)
    return found


def _capture_references(model, vae, clip, story: StoryInput, state, sigmas: Tensor) -> None:
    """DDIM-invert each reference image once, banking its self-attention features as its character's anchor."""
    for name, image in story.references.items():
        latent = vae.encode(image[None, ..., :3])
        text = f"{name}, {story.descriptions.get(name, '')}".strip(", ")
        tokens, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
        state.frames = (StoryFrame({}, {name: FULL_IMAGE}, anchors=(name,)),)
        state.phase = "capture"
        invert(model, latent, Embedding(tokens, pooled), sigmas)


def sample(model, clip, vae, story: StoryInput, options: SampleOptions, progress: ProgressFn | None = None,
           frames: Sequence[int] | None = None, stats: dict[str, Any] | None = None) -> tuple[Tensor, list[dict[str, Any]]]:
    """IMAGE [N, H, W, 3] of the chosen ``frames`` (default: all) and their info; ``stats`` gets the bank's
    largest size in bytes (``bank_bytes``) and the patch events of all its sampling runs (``fired``)."""
    import comfy.sample
    import comfy.samplers

    chosen = [story.frames[i] for i in (range(len(story.frames)) if frames is None else frames)]
    patched = apply_story_attention(model, options.attention)
    state = find_story_state(patched)
    state.bank = FeatureBank()
    sigmas = schedule(patched, options.scheduler, options.steps)
    state.sigmas = sigmas
    empty = clip.encode_from_tokens(clip.tokenize(""))
    neg_tokens, neg_pooled = clip.encode_from_tokens(clip.tokenize(options.negative), return_pooled=True)
    negative = conditioning(neg_tokens, neg_pooled)
    first = anchors(story)
    counter = StepCounter(progress, options.steps * len(chosen))
    images, info, fired = [], [], collections.Counter()
    try:
        if options.attention.consistency and story.references:
            _capture_references(patched, vae, clip, story, state, sigmas)
        for start in range(0, len(chosen), options.batch):
            chunk = chosen[start : start + options.batch]
            specs = []
            for frame in chunk:
                mine = tuple(n for n in frame.places if first.get(n) == frame.index)
                specs.append(StoryFrame(
                    tokens={n: tuple(frame.spans.get(n, {}).get("all", ())) for n in frame.places},
                    boxes={n: layout.place_box(p) for n, p in frame.places.items()},
                    anchors=mine, reads=tuple(n for n in frame.places if n not in mine)))  # fmt: skip
            positive, length = _positive(chunk, empty, options.fuse, options.fuse_from)
            state.frames, state.context_length = tuple(specs), length
            state.phase = "capture" if any(s.anchors for s in specs) else "inject"
            latent = torch.zeros(len(chunk), 4, options.height // 8, options.width // 8)
            noise = torch.cat([comfy.sample.prepare_noise(latent[:1], options.seed + f.index) for f in chunk])
            sampled = comfy.sample.sample_custom(
                patched, noise, options.cfg, comfy.samplers.sampler_object(options.sampler), sigmas, positive, negative,
                latent, callback=counter.callback(preview=True, weight=len(chunk)), disable_pbar=True, seed=options.seed + chunk[0].index)
            fired.update(state.fired)  # the state's counts are reset per sampling run
            images.append(vae.decode(sampled).float().cpu()[..., :3])
            if stats is not None:
                stats["bank_bytes"] = max(stats.get("bank_bytes", 0), state.bank.nbytes)
            info += [{**f.info(), "anchor_of": list(s.anchors), "shares_from_anchor": list(s.reads)} for f, s in zip(chunk, specs, strict=True)]
        if stats is not None:
            stats["fired"] = fired
        return torch.cat(images), info
    finally:
        state.bank.clear()
        state.phase, state.frames = "idle", ()


def unresolved_input(story: StoryInput, clip) -> StoryInput:
    """The same story with each sentence as written going straight to CLIP (no resolution, no descriptions, no
    layout): what plain prompting gives, the benchmark's first row."""
    frames = []
    for frame in story.frames:
        tokens, pooled = clip.encode_from_tokens(clip.tokenize(re.sub(r"[()]", " ", frame.sentence)), return_pooled=True)
        frames.append(dataclasses.replace(frame, prompt=frame.sentence, tokens=tokens.cpu(), pooled=pooled, fused=None,
                                          spans={}, places={}))  # fmt: skip
    return dataclasses.replace(story, frames=frames, references={})
