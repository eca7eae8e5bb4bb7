"""Quality figures of the built-in tiny model, measured by the weight-free judge.

    python -m laser_story.tinyworld.evaluate                       # judge accuracy + fidelity on 100 held-out captions
    python -m laser_story.tinyworld.evaluate --grid out.png        # also save the generated images as a grid

Prints (a) the judge's attribute accuracy on rendered world scenes (ground truth known) and on the same
scenes after a VAE round trip, and (b) the prompt fidelity of the model's images for the held-out
captions (``world.heldout_captions``: scenes and phrasings never trained on), per attribute.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch

from . import judge, world

DEFAULT_STEPS = 20
DEFAULT_CFG = 5.0
DEFAULT_SAMPLER = "euler"
DEFAULT_SCHEDULER = "normal"


def encode(clip, text: str):
    """ComfyUI conditioning for ``text`` (what CLIPTextEncode produces)."""
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))


def stack_conditioning(conds: Sequence) -> list:
    """One batched conditioning from single-prompt ones (sample i gets prompt i)."""
    tensors = torch.cat([c[0][0] for c in conds], 0)
    extra = dict(conds[0][0][1])
    if "pooled_output" in extra:
        extra["pooled_output"] = torch.cat([c[0][1]["pooled_output"] for c in conds], 0)
    return [[tensors, extra]]


def noise_for(seeds: Sequence[int], size: int = world.IMAGE_SIZE) -> torch.Tensor:
    """Initial latent noise, one ComfyUI-seeded tensor per seed (same as a KSampler with that seed)."""
    import comfy.sample

    lat = torch.zeros(1, 4, size // 8, size // 8)
    return torch.cat([comfy.sample.prepare_noise(lat, int(s)) for s in seeds], 0)


def sample_latents(model, positive, negative, noise: torch.Tensor, steps: int = DEFAULT_STEPS, cfg: float = DEFAULT_CFG,
                   sampler: str = DEFAULT_SAMPLER, scheduler: str = DEFAULT_SCHEDULER, seed: int = 0) -> torch.Tensor:
    import comfy.sample

    latent = torch.zeros_like(noise)
    return comfy.sample.sample(model, noise, steps, cfg, sampler, scheduler, positive, negative, latent,
                               denoise=1.0, disable_pbar=True, seed=seed)


@torch.no_grad()
def decode(vae, latents: torch.Tensor) -> np.ndarray:
    img = vae.decode(latents)
    return (img.clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8).reshape(-1, *img.shape[-3:])


@torch.no_grad()
def generate(model, clip, vae, captions: Sequence[str], seeds: Sequence[int], steps: int = DEFAULT_STEPS,
             cfg: float = DEFAULT_CFG, batch: int = 50, negative: str = "", sampler: str = DEFAULT_SAMPLER,
             scheduler: str = DEFAULT_SCHEDULER, size: int = world.IMAGE_SIZE) -> np.ndarray:
    """uint8 images (N, size, size, 3) for ``captions``, caption i sampled from seed i."""
    neg = encode(clip, negative)
    out = []
    for i in range(0, len(captions), batch):
        caps, sds = captions[i : i + batch], seeds[i : i + batch]
        pos = stack_conditioning([encode(clip, c) for c in caps])
        lat = sample_latents(model, pos, neg, noise_for(sds, size), steps, cfg, sampler, scheduler, seed=int(sds[0]))
        out.append(decode(vae, lat))
    return np.concatenate(out, 0)


@dataclasses.dataclass
class FidelityReport:
    n: int
    scorable: int
    matched: int
    total: int
    per_attribute: dict[str, tuple[int, int]]
    per_caption: list[float | None]

    @property
    def fidelity(self) -> float:
        return self.matched / max(1, self.total)

    @property
    def mean_per_caption(self) -> float:
        vals = [v for v in self.per_caption if v is not None]
        return float(np.mean(vals)) if vals else float("nan")

    def lines(self) -> list[str]:
        out = [f"prompt fidelity (share of stated attributes present): {self.fidelity:.1%} "
               f"({self.matched}/{self.total}; mean per caption {self.mean_per_caption:.1%}; "
               f"{self.scorable}/{self.n} captions scorable)"]
        for attr, (m, t) in sorted(self.per_attribute.items()):
            out.append(f"  {attr:<10} {m / max(1, t):6.1%}  ({m}/{t})")
        return out


def fidelity_report(images: Sequence[np.ndarray], captions: Sequence[str]) -> FidelityReport:
    matched = total = scorable = 0
    per: Counter = Counter()
    per_t: Counter = Counter()
    per_caption: list[float | None] = []
    for img, cap in zip(images, captions, strict=True):
        f = judge.prompt_fidelity(img, cap)
        per_caption.append(f.score)
        if not f.scorable:
            continue
        scorable += 1
        matched += f.matched
        total += f.total
        for a, (m, t) in f.per_attribute.items():
            per[a] += m
            per_t[a] += t
    return FidelityReport(len(captions), scorable, matched, total, {a: (per[a], per_t[a]) for a in per_t}, per_caption)


@torch.no_grad()
def judge_accuracy(n: int = 500, stream: str = "judge-eval", vae=None, size: int = world.IMAGE_SIZE) -> judge.AccuracyCounts:
    """Judge attribute accuracy on ``n`` scenes rendered at ``size`` (after a VAE round trip when ``vae`` is given)."""
    acc = judge.AccuracyCounts()
    scenes = [world.scene_from_seed(i, stream) for i in range(n)]
    images = np.stack([world.render(s, size) for s in scenes])
    if vae is not None:
        rt = []
        for i in range(0, n, 50):
            x = torch.from_numpy(images[i : i + 50]).float() / 255.0
            rt.append(decode(vae, vae.encode(x)))
        images = np.concatenate(rt, 0)
    for s, img in zip(scenes, images, strict=True):
        acc.add(judge.attribute_accuracy(s, judge.detect(img)))
    return acc


def accuracy_lines(name: str, acc: judge.AccuracyCounts) -> list[str]:
    parts = ", ".join(f"{k} {acc.accuracy(k):.1%}" for k in ("shape", "colour", "size", "position", "background", "count"))
    return [f"judge attribute accuracy on {name}: {acc.accuracy():.1%} ({parts})"]


@dataclasses.dataclass
class EncoderReport:
    """Judge-independent figures of the image encoder (fixed cases: held-out scenes, seeded candidates)."""

    retrieval_top1: float  # the image's own caption ranks first among ``candidates`` captions
    candidates: int
    images: int
    same_character: float  # sim(A here, A there) > sim(A here, B there)
    triplets: int

    def lines(self) -> list[str]:
        return [
            f"image encoder: caption retrieval top-1 among {self.candidates}: {100 * self.retrieval_top1:.1f} % "
            f"of {self.images} held-out scenes",
            f"image encoder: same character in two places more alike than two characters: "
            f"{100 * self.same_character:.1f} % of {self.triplets} triplets",
        ]


def _character_render(rng: np.random.Generator, character: int, cell: int, background: str, size: int) -> np.ndarray:
    ch = world.CAST[character]
    obj = world.make_object(rng, ch.shape, ch.colour, ch.size, world.POSITIONS[cell], ch.name)
    return world.render(world.Scene((obj,), background), size)


def character_triplets(n: int, size: int = 128) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(A at p, A at q, B at q) renders on one background: the fixed same-character cases."""
    out = []
    for i in range(n):
        rng = world.rng_for("encoder-characters", i)
        a, b = (int(v) for v in rng.choice(len(world.CAST), size=2, replace=False))
        p, q = (int(v) for v in rng.choice(len(world.POSITIONS), size=2, replace=False))
        background = world.BACKGROUNDS[int(rng.integers(len(world.BACKGROUNDS)))]
        out.append(tuple(_character_render(rng, c, cell, background, size) for c, cell in ((a, p), (a, q), (b, q))))
    return out


def encoder_report(clip, clip_vision, head, n: int = 200, candidates: int = 20, triplets: int = 200,
                   size: int = 128) -> EncoderReport:
    """Caption retrieval on ``n`` held-out scenes rendered at ``size`` and same-character triplets."""
    from . import encoder

    full = world.CaptionOptions(p_size=1.0, p_position=1.0, p_background=1.0)
    scenes = world.heldout_scenes(n)
    captions = [world.caption(sc, world.rng_for("encoder-eval-caption", i), full) for i, sc in enumerate(scenes)]
    as_images = lambda arrays: torch.from_numpy(np.stack(arrays)).float() / 255.0  # noqa: E731
    img = encoder.image_embeds(clip_vision, as_images([world.render(sc, size) for sc in scenes]))
    txt = encoder.text_embeds(clip, head, captions)
    hits = 0
    for i in range(n):
        others = [j for j in world.rng_for("encoder-eval-candidates", i).permutation(n) if j != i][: candidates - 1]
        scores = img[i] @ txt[[i, *others]].T
        hits += int(scores.argmax()) == 0
    cases = character_triplets(triplets, size)
    emb = [encoder.image_embeds(clip_vision, as_images(list(case))) for case in cases]
    same = sum(float(e[0] @ e[1]) > float(e[0] @ e[2]) for e in emb)
    return EncoderReport(hits / n, candidates, n, same / triplets, triplets)


def save_grid(path: str, images: np.ndarray, cols: int = 10, scale: int = 2) -> None:
    from PIL import Image

    n = len(images)
    rows = (n + cols - 1) // cols
    h, w = images.shape[1:3]
    grid = np.full((rows * (h + 2), cols * (w + 2), 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * (h + 2) : r * (h + 2) + h, c * (w + 2) : c * (w + 2) + w] = img
    Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.Resampling.NEAREST).save(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=None, help="weights file (default: the shipped one)")
    ap.add_argument("--n", type=int, default=100, help="held-out captions")
    ap.add_argument("--first", type=int, default=0,
                    help="first held-out scene (0: the reported set 0..99; 100: scenes 100..199 for choosing settings)")
    ap.add_argument("--judge-n", type=int, default=500, help="rendered scenes for the judge's accuracy")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--cfg", type=float, default=DEFAULT_CFG)
    ap.add_argument("--sampler", default=DEFAULT_SAMPLER)
    ap.add_argument("--scheduler", default=DEFAULT_SCHEDULER)
    ap.add_argument("--seed", type=int, default=0, help="first sampling seed (caption i uses seed + i)")
    ap.add_argument("--grid", default=None, help="save the generated images to this PNG")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = automatic)")
    ap.add_argument("--encoder", action="store_true", help="only the image encoder's figures")
    a = ap.parse_args(argv)
    from .host import auto_threads, ensure_comfy

    ensure_comfy(cpu=True, threads=a.threads or auto_threads())
    from . import weights

    path = a.weights or weights.DEFAULT_WEIGHTS
    model, clip, vae, meta = weights.load(path)
    size = weights.image_size(meta)
    t0 = time.time()
    if a.encoder:
        from . import encoder

        clip_vision, head, encoder_meta = encoder.load()
        print(f"image encoder: {encoder.DEFAULT_ENCODER} ({encoder_meta.get('command', '?')})")
        for line in encoder_report(clip, clip_vision, head).lines():
            print(line)
        print(f"total {time.time() - t0:.1f} s")
        return 0
    for line in accuracy_lines(f"{a.judge_n} rendered world scenes at {size}x{size}", judge_accuracy(a.judge_n, size=size)):
        print(line)
    n_vae = min(a.judge_n, 200)
    for line in accuracy_lines(f"{n_vae} scenes after a VAE round trip", judge_accuracy(n_vae, vae=vae, size=size)):
        print(line)
    pairs = world.heldout_captions(a.first + a.n)[a.first :]
    captions = [c for _, c in pairs]
    t1 = time.time()
    images = generate(model, clip, vae, captions, [a.seed + i for i in range(a.n)], a.steps, a.cfg,
                      sampler=a.sampler, scheduler=a.scheduler, size=size)
    t_gen = time.time() - t1
    rep = fidelity_report(images, captions)
    print(f"model: {path} ({meta.get('command', '?')})")
    print(f"{a.n} held-out captions (scenes {a.first}..{a.first + a.n - 1}), {a.sampler}/{a.scheduler} {a.steps} steps, cfg {a.cfg}, seeds {a.seed}..{a.seed + a.n - 1}:"
          f" generated in {t_gen:.1f} s")
    for line in rep.lines():
        print(line)
    if a.grid:
        save_grid(a.grid, images)
        print(f"saved {a.grid}")
    print(f"total {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
