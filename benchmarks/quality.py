"""Morph quality on the built-in tiny model, judged by the weight-free judge. Prints a table, never asserts.

For every prompt pair in ``benchmarks/data/prompt_pairs.json`` (A -> B, what changes, LASER control) and the
same seed, three ways to make an N-frame animation from A to B:

* ``laser``        LASER morph (``attention.morph.run_morph``: P0 generated from the seed, DDIM-inverted,
                    frames sampled with interpolated embeddings and the segment's attention/feature injection);
* ``naive``        per-frame linear interpolation of the text embeddings, every frame from the same seeded
                    noise, no injection;
* ``independent``  the same interpolated embeddings, but frame i sampled from its own noise (seed + i).

Columns (means over pairs; arrows say which way is better):
  endpoint fidelity ^   judge prompt fidelity of frame 0 against A and of the last frame against B
  PDV pix / ssim    v   variance of adjacent-frame distances (pixel RMS, 1 - SSIM): even pacing
  directness pix/ssim v path length / endpoint distance (1 = no detour)
  identity ^            share of frames keeping the attributes A and B share (e.g. "red star" in a shape-only
                        change is checked on colour; a character pair on the character)
  s/pair                wall time (informative only)

    .venv/bin/python benchmarks/quality.py                    # all pairs, 8 frames, 50 steps
    .venv/bin/python benchmarks/quality.py --pairs 5 --frames 6
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from laser_story.tinyworld import judge, world  # noqa: E402
from laser_story.tinyworld.host import auto_threads, ensure_comfy  # noqa: E402

PAIRS_FILE = ROOT / "benchmarks" / "data" / "prompt_pairs.json"
METHODS = ("laser", "naive", "independent")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=0, help="use the first N pairs (0 = all)")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--cfg", type=float, default=5.0)
    p.add_argument("--scheduler", default="ddim_uniform")
    p.add_argument("--seed", type=int, default=0, help="pair k uses seed + k")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--weights", default=None, help="tiny-model weights (default: the shipped file)")
    p.add_argument("--save", default=None, help="folder to save each animation as a PNG strip")
    p.add_argument("--threads", type=int, default=0)
    return p.parse_args()


def load_pairs(n: int = 0) -> list[dict]:
    pairs = json.loads(PAIRS_FILE.read_text())["pairs"]
    return pairs[:n] if n else pairs


def shared_attributes(a: str, b: str) -> dict[str, str]:
    """Attributes the first objects of two captions share (what a morph between them should keep)."""
    pa, pb = world.parse_caption(a), world.parse_caption(b)
    if not pa.objects or not pb.objects:
        return {}
    oa, ob = pa.objects[0], pb.objects[0]
    return {k: v for k, v in oa.items() if ob.get(k) == v}


# ------------------------------------------------------------------------------------------------ methods


def embed(clip, text: str):
    from laser_story.attention.sampling import Embedding

    tokens, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
    return Embedding(tokens, pooled)


def laser_frames(model, clip, vae, a: str, b: str, control: str, frames: int, steps: int, cfg: float, scheduler: str,
                 seed: int, size: int) -> torch.Tensor:
    """LASER row: ``attention.morph.run_morph`` on the tiny model (P0 generated from ``seed``)."""
    from laser_story.attention.morph import run_morph

    result = run_morph(model, [embed(clip, a), embed(clip, b)], embed(clip, ""), [control], None, frames, steps, cfg,
                       scheduler, seed, (1, 4, size // 8, size // 8), [a, b])
    return result.latents


def interpolated_frames(model, clip, a: str, b: str, frames: int, steps: int, cfg: float, scheduler: str, seed: int,
                        same_noise: bool, size: int) -> torch.Tensor:
    """Baselines: per-frame linear interpolation of the text embeddings, no injection; all frames from the
    seed's noise (``same_noise``) or frame i from seed + i."""
    import comfy.sample
    import comfy.samplers

    from laser_story.attention.morph import interpolate

    alphas = [i / (frames - 1) for i in range(frames)]
    emb = interpolate(embed(clip, a), embed(clip, b), alphas)
    neg = embed(clip, "")
    lat = torch.zeros(1, 4, size // 8, size // 8)
    seeds = [seed] * frames if same_noise else [seed + i for i in range(frames)]
    noise = torch.cat([comfy.sample.prepare_noise(lat, s) for s in seeds])
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps).cpu()
    pos = [[emb.tokens, {"pooled_output": emb.pooled}]]
    negc = [[neg.tokens, {"pooled_output": neg.pooled}]]
    return comfy.sample.sample_custom(model, noise, cfg, comfy.samplers.sampler_object("euler"), sigmas, pos, negc,
                                      torch.zeros_like(noise), disable_pbar=True, seed=seed)


def to_images(vae, latents: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        img = vae.decode(latents)
    return (img.clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8).reshape(-1, *img.shape[-3:])


def score(frames: np.ndarray, a: str, b: str) -> dict[str, float]:
    analyses = [judge.detect(f) for f in frames]
    fa = judge.prompt_fidelity(frames[0], a, analyses[0]).score
    fb = judge.prompt_fidelity(frames[-1], b, analyses[-1]).score
    keep = shared_attributes(a, b)
    smooth = judge.sequence_smoothness(list(frames))
    return {
        "fidelity": float(np.mean([fa, fb])),
        "pdv_pix": smooth["pdv_pix"],
        "pdv_ssim": smooth["pdv_ssim"],
        "dir_pix": smooth["directness_pix"],
        "dir_ssim": smooth["directness_ssim"],
        "identity": judge.identity_consistency(frames, keep, analyses) if keep else float("nan"),
    }


def main() -> None:
    opts = parse_args()
    ensure_comfy(cpu=True, threads=opts.threads or auto_threads())
    from laser_story.tinyworld import weights

    model, clip, vae, meta = weights.load(opts.weights or weights.DEFAULT_WEIGHTS)
    size = weights.image_size(meta)
    pairs = load_pairs(opts.pairs)
    rows: dict[str, list[dict[str, float]]] = {m: [] for m in opts.methods}
    times: dict[str, float] = {m: 0.0 for m in opts.methods}
    save = Path(opts.save) if opts.save else None
    if save:
        save.mkdir(parents=True, exist_ok=True)
    for k, pair in enumerate(pairs):
        seed = opts.seed + k
        for method in opts.methods:
            t0 = time.perf_counter()
            if method == "laser":
                lat = laser_frames(model, clip, vae, pair["a"], pair["b"], pair["control"], opts.frames, opts.steps,
                                   opts.cfg, opts.scheduler, seed, size)
            else:
                lat = interpolated_frames(model, clip, pair["a"], pair["b"], opts.frames, opts.steps, opts.cfg,
                                          opts.scheduler, seed, same_noise=method == "naive", size=size)
            frames = to_images(vae, lat)
            times[method] += time.perf_counter() - t0
            rows[method].append(score(frames, pair["a"], pair["b"]))
            if save:
                from PIL import Image

                Image.fromarray(np.concatenate(list(frames), 1)).save(save / f"pair{k:02d}_{method}.png")
        print(f"pair {k:2d} [{pair['change']:<10}] {pair['a']!r} -> {pair['b']!r}: "
              + "  ".join(f"{m} fid {rows[m][-1]['fidelity']:.2f} pdv {rows[m][-1]['pdv_pix']:.5f}" for m in opts.methods),
              flush=True)
    print()
    print(f"model {opts.weights or weights.DEFAULT_WEIGHTS} ({meta.get('command', '?')}); {size}x{size}, {len(pairs)} prompt pairs, "
          f"{opts.frames} frames, {opts.steps} steps, cfg {opts.cfg}, scheduler {opts.scheduler}, seeds {opts.seed}..{opts.seed + len(pairs) - 1}")
    cols = [("fidelity", "endpoint fidelity ^"), ("pdv_pix", "PDV pix v"), ("pdv_ssim", "PDV ssim v"),
            ("dir_pix", "directness pix v"), ("dir_ssim", "directness ssim v"), ("identity", "identity ^")]
    header = f"{'method':<12}" + "".join(f"{title:>20}" for _, title in cols) + f"{'s/pair':>10}"
    print(header)
    print("-" * len(header))
    for m in opts.methods:
        vals = []
        for key, _ in cols:
            v = np.array([r[key] for r in rows[m]], dtype=float)
            v = v[np.isfinite(v)]
            fmt = "{:.5f}" if key.startswith("pdv") else "{:.3f}"
            vals.append(fmt.format(v.mean()) if len(v) else "n/a")
        print(f"{m:<12}" + "".join(f"{v:>20}" for v in vals) + f"{times[m] / max(1, len(pairs)):>10.2f}")


if __name__ == "__main__":
    main()
