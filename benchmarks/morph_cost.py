"""What a LASER morph costs against plain sampling, measured in one process on one model.

Prints, never asserts:
  (a) cost ratio = morph of N frames / (one inversion + N frames of plain batched sampling, same steps);
  (b) bank memory: total, per step and per frame (the bank is shared by every frame of a segment);
  (c) how both grow with N.

    .venv/bin/python benchmarks/morph_cost.py                          # the built-in model's UNet shape, CPU, 128x128
    .venv/bin/python benchmarks/morph_cost.py --spacing even --frames 8    # the Morph Interpolator's even frame spacing
    .venv/bin/python benchmarks/morph_cost.py --sd15 --device cuda --fp16 --size 512   # SD1.5-shaped UNet, random weights
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from laser_story.tinyworld.host import ensure_comfy  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (latent = size / 8; 128: the built-in model's)")
    parser.add_argument("--cfg", type=float, default=7.5)
    parser.add_argument("--codes", nargs="+", default=["0", "1", "2"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sd15", action="store_true", help="SD1.5-shaped UNet (320 channels, 768 context) with random weights")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--spacing", default="linear", choices=("linear", "even"),
                        help="the morph's frame weights (even: a second sampling pass, the Morph Interpolator's frame_spacing)")
    return parser.parse_args()


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    opts = parse_args()
    ensure_comfy(cpu=opts.device == "cpu")
    from laser_story.attention.laser import ControlSettings, apply_injector
    from laser_story.attention.morph import interpolate, run_segment, sample_frames
    from laser_story.attention.sampling import Embedding, invert, schedule
    from laser_story.attention.state import FeatureBank
    from laser_story.tinyworld.model import TinySpec, build_model
    from laser_story.training.tiny_model import TRAINED_SPEC

    spec = TinySpec(model_channels=320, context_dim=768) if opts.sd15 else TRAINED_SPEC
    dtype = torch.float16 if opts.fp16 else torch.float32
    model = build_model(spec, seed=0, dtype=dtype)
    settings = ControlSettings()
    patched = apply_injector(model, settings)
    sigmas = schedule(model, "ddim_uniform", opts.steps)
    gen = torch.Generator().manual_seed(0)
    source = Embedding(torch.randn(1, 77, spec.context_dim, generator=gen), None)
    target = Embedding(torch.randn(1, 77, spec.context_dim, generator=gen), None)
    latent = torch.randn(1, 4, opts.size // 8, opts.size // 8, generator=gen)
    params = sum(p.numel() for p in model.model.diffusion_model.parameters()) / 1e6
    print(f"UNet {params:.1f} M params, {opts.size}x{opts.size}, {opts.steps} steps, cfg {opts.cfg}, "
          f"{dtype}, device {opts.device}, frame spacing {opts.spacing}, torch threads {torch.get_num_threads()}")

    def baseline(frames: int) -> None:
        noise = invert(model, latent, source, sigmas)
        alphas = [j / (frames - 1) for j in range(frames)]
        sample_frames(model, noise, interpolate(source, target, alphas),
                      Embedding(source.tokens.expand(frames, -1, -1)), sigmas, opts.cfg)

    banks: dict[tuple[str, int], tuple[int, int]] = {}

    def morph(code: str, frames: int) -> None:
        result = run_segment(patched, latent, source, target, code, settings, sigmas, frames, opts.cfg,
                             FeatureBank(torch.float16 if settings.store_fp16 else torch.float32),
                             even_spacing=opts.spacing == "even")
        banks[(code, frames)] = (result.bank_bytes, result.bank_entries)

    baseline(opts.frames[0])  # warm-up: model load, kernels, allocator
    for code in opts.codes:
        morph(code, opts.frames[0])
    print(f"\n{'N':>3} {'control':>7} {'baseline s':>11} {'morph s':>9} {'ratio':>6} {'bank MiB':>9} {'KiB/step':>9} {'KiB/frame':>10}")
    for frames in opts.frames:
        # Interleaved repeats, best of each: background load hits both sides alike.
        base_times, morph_times = [], {code: [] for code in opts.codes}
        for _ in range(opts.repeats):
            base_times.append(timed(lambda f=frames: baseline(f)))
            for code in opts.codes:
                morph_times[code].append(timed(lambda c=code, f=frames: morph(c, f)))
        base = min(base_times)
        for code in opts.codes:
            cost = min(morph_times[code])
            nbytes, _ = banks[(code, frames)]
            print(f"{frames:>3} {code:>7} {base:>11.3f} {cost:>9.3f} {cost / base:>6.3f} {nbytes / 2**20:>9.2f} "
                  f"{nbytes / opts.steps / 1024:>9.1f} {nbytes / frames / 1024:>10.1f}")
    print("\nbest of interleaved repeats; ratio goal <= 1.15; baseline = one inversion + N frames of plain batched sampling on the unpatched model")


if __name__ == "__main__":
    with torch.inference_mode():
        main()
