"""LASER as image-to-animation on the built-in tiny model (128x128): a rendered scene in, a described change out.
Prints a table, never asserts.

Every case of ``benchmarks/data/animate_cases.json`` (written once by ``--write-cases`` and frozen) is a world
scene with one to three objects (exact pixels and caption known), a coarse instruction ("the star turns blue",
"the circle becomes a square", "the heart moves right", "the cross turns green and moves up") and the caption
of the scene after it. The planner (rule-based: the image caption edited by the instruction) turns the
instruction into keyframe prompts and control codes; every method then animates the same input with the same
seed:

* ``laser``       LASER with the planner's codes: the input DDIM-inverted with its features banked, frames sampled
                  from that noise with interpolated prompts (source as negative) and the code's injection;
* ``laser-0/1/2`` the same with every segment's code forced;
* ``inversion``   LASER's own ablation: the same inversion and interpolated prompts, nothing injected;
* ``img2img``     per-frame img2img of the input with the interpolated prompts (KSampler denoise ``--denoise``);
* ``naive``       prompt interpolation from seeded noise (the input image is never seen).

Columns (means over cases; ^ higher is better, v lower):
  psnr0 / ssim0 ^  frame 0 against the input (kornia); the first row prints the VAE round trip's own figures
  target ^         judge prompt fidelity of the last frame against the target caption
  kept ^           share of what should stay that stays, over every frame: the changed object's other
                   attributes, every other object, the background (judge)
  pdv v, direct v  variance of adjacent-frame pixel distances; path length / endpoint distance
  jump v           largest adjacent step / mean step
  s/anim           wall time per animation (informative only)

    .venv/bin/python benchmarks/animate.py                      # all cases, every method (CPU: about 2 h)
    .venv/bin/python benchmarks/animate.py --cases 6 --methods laser inversion img2img
    .venv/bin/python benchmarks/animate.py --caption judge      # P0 from the judge's reading of the image
    .venv/bin/python benchmarks/animate.py --dev --frame-negative empty --set conv_output_block=7  # try settings
"""

from __future__ import annotations

import argparse
import dataclasses
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

CASES_FILE = ROOT / "benchmarks" / "data" / "animate_cases.json"
METHODS = ("laser", "laser-0", "laser-1", "laser-2", "inversion", "img2img", "naive")
SIZE = 128
# The kinds of change the cases hold, in order, and the codes a right plan gives them.
KINDS = (["colour"] * 8 + ["shape"] * 6 + ["position"] * 6 + ["size"] * 2 + ["colour+shape"] * 2
         + ["colour, then position"] * 2)  # fmt: skip
EXPECTED = {"colour": ["0"], "shape": ["1"], "position": ["1"], "size": ["1"], "colour+shape": ["2"],
            "colour, then position": ["0", "1"]}  # fmt: skip
MOVES = {"right": (None, "right"), "left": (None, "left"), "up": ("top", None), "down": ("bottom", None)}


# ------------------------------------------------------------------------------------------------ cases


def _cell(position: str) -> tuple[str, str]:
    words = position.split()
    row = next((w for w in words if w in ("top", "bottom")), "center")
    col = next((w for w in words if w in ("left", "right")), "center")
    return row, col


def _position(row: str, col: str) -> str:
    return col if row == "center" else row if col == "center" else f"{row} {col}"


def _move(rng: np.random.Generator, obj: world.WorldObject, taken: set[str]) -> tuple[str, str] | None:
    """A direction word and the position it takes ``obj`` to, onto a free cell."""
    options = []
    for word, (row, col) in MOVES.items():
        r0, c0 = _cell(obj.position)
        target = _position(row or r0, col or c0)
        if target != obj.position and target not in taken:
            options.append((word, target))
    return options[int(rng.integers(len(options)))] if options else None


def make_case(index: int, kind: str, stream: str = "animate-case") -> dict:
    for attempt in range(200):
        rng = world.rng_for(stream, index, attempt)
        scene = world.sample_scene(rng, character_prob=0.0)
        obj = scene.objects[0]
        if sum(o.shape == obj.shape for o in scene.objects) > 1:
            continue  # "the star" must name one object
        taken = {o.position for o in scene.objects}
        changes: dict[str, str] = {}
        phrases = []
        if "colour" in kind:
            colour = [c for c in world.COLOURS if c != obj.colour][int(rng.integers(len(world.COLOURS) - 1))]
            changes["colour"] = colour
            phrases.append(f"turns {colour}")
        if "shape" in kind:
            shapes = [s for s in world.SHAPES if s != obj.shape and all(o.shape != s for o in scene.objects)]
            changes["shape"] = shapes[int(rng.integers(len(shapes)))]
            phrases.append(f"becomes a {changes['shape']}")
        if "size" in kind:
            order = world.SIZES
            step = 1 if obj.size == "small" else -1 if obj.size == "large" else (1 if rng.random() < 0.5 else -1)
            changes["size"] = order[order.index(obj.size) + step]
            phrases.append("grows" if step > 0 else "shrinks")
        if "position" in kind:
            move = _move(rng, obj, taken)
            if move is None:
                continue
            changes["position"] = move[1]
            phrases.append(f"moves {move[0]}")
        before = [o.attributes() for o in scene.objects]
        after = [dict(before[0], **changes), *before[1:]]
        joiner = ", then " if kind == "colour, then position" else " and "
        return {
            "id": f"{index:02d}-{kind.replace(' ', '').replace(',', '-')}",
            "kind": kind,
            "scene": scene.to_json(),
            "caption": world.full_caption(before, scene.background),
            "instruction": f"the {obj.shape} " + joiner.join(phrases),
            "target": world.full_caption(after, scene.background),
            "changed": sorted(changes),
            "expected_controls": EXPECTED[kind],
        }
    raise RuntimeError(f"no scene for case {index} ({kind})")


def write_cases(path: Path = CASES_FILE) -> None:
    cases = [make_case(i, kind) for i, kind in enumerate(KINDS)]
    path.write_text(json.dumps({"note": "frozen: written once by benchmarks/animate.py --write-cases; never tuned on",
                                "cases": cases}, indent=1) + "\n")  # fmt: skip
    print(f"wrote {len(cases)} cases to {path}")


# ------------------------------------------------------------------------------------------------ methods


@dataclasses.dataclass
class Setup:
    model: object
    clip: object
    vae: object
    steps: int
    cfg: float
    scheduler: str
    frames: int
    denoise: float
    frame_negative: str = "source"  # LASER's frames' negative: the source prompt, "empty", or "fade" (source to empty)
    settings: object = None  # ControlSettings of the laser rows (None: the defaults)
    even_spacing: bool = False  # the laser rows' frames at evenly spaced weights (two passes)


def embed(clip, text: str):
    from laser_story.attention.sampling import Embedding

    tokens, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
    return Embedding(tokens, pooled)


def frame_embeddings(embeddings: list, frames: int):
    """The interpolated prompts of every output frame, segment after segment (as LASER's segments hand over)."""
    from laser_story.attention.morph import interpolate
    from laser_story.attention.sampling import Embedding

    parts = []
    for k in range(len(embeddings) - 1):
        alphas = [j / (frames - 1) for j in range(0 if k == 0 else 1, frames)]
        parts.append(interpolate(embeddings[k], embeddings[k + 1], alphas))
    pooled = None if parts[0].pooled is None else torch.cat([p.pooled for p in parts])
    return Embedding(torch.cat([p.tokens for p in parts]), pooled)


def laser(s: Setup, latent, embeddings, codes, seed: int, settings=None):
    from laser_story.attention.laser import ControlSettings, apply_injector
    from laser_story.attention.morph import run_morph

    model = apply_injector(s.model, settings or s.settings or ControlSettings())
    negative = None if s.frame_negative == "source" else embed(s.clip, "")
    return run_morph(model, embeddings, embed(s.clip, ""), codes, latent, s.frames, s.steps, s.cfg, s.scheduler,
                     seed, frame_negative=negative, fade_negative=s.frame_negative == "fade",
                     even_spacing=s.even_spacing).latents  # fmt: skip


def img2img(s: Setup, latent, embeddings, negative, seed: int):
    import comfy.sample

    from laser_story.attention.sampling import conditioning

    positive = frame_embeddings(embeddings, s.frames)
    n = positive.tokens.shape[0]
    noise = comfy.sample.prepare_noise(latent, seed).expand(n, -1, -1, -1).contiguous()  # one KSampler seed per frame
    neg = embed(s.clip, negative)
    return comfy.sample.sample(s.model, noise, s.steps, s.cfg, "euler", s.scheduler,
                               conditioning(positive.tokens, positive.pooled),
                               conditioning(neg.tokens.expand(n, -1, -1), neg.pooled.expand(n, -1) if neg.pooled is not None else None),
                               latent.expand(n, -1, -1, -1).contiguous(), denoise=s.denoise, disable_pbar=True, seed=seed)  # fmt: skip


def naive(s: Setup, embeddings, negative, seed: int):
    import comfy.sample
    import comfy.samplers

    from laser_story.attention.sampling import conditioning, schedule

    positive = frame_embeddings(embeddings, s.frames)
    n = positive.tokens.shape[0]
    empty = torch.zeros(1, 4, SIZE // 8, SIZE // 8)
    noise = comfy.sample.prepare_noise(empty, seed).expand(n, -1, -1, -1).contiguous()
    neg = embed(s.clip, negative)
    return comfy.sample.sample_custom(s.model, noise, s.cfg, comfy.samplers.sampler_object("euler"),
                                      schedule(s.model, s.scheduler, s.steps), conditioning(positive.tokens, positive.pooled),
                                      conditioning(neg.tokens, neg.pooled), torch.zeros_like(noise), disable_pbar=True, seed=seed)  # fmt: skip


def animate(method: str, s: Setup, latent, plan, seed: int) -> torch.Tensor:
    from laser_story.attention.laser import ControlSettings

    embeddings = [embed(s.clip, p) for p in plan.prompts]
    if method == "laser":
        return laser(s, latent, embeddings, list(plan.controls), seed)
    if method.startswith("laser-"):
        return laser(s, latent, embeddings, [method[-1]] * len(plan.controls), seed)
    if method == "inversion":  # every gate closed: inversion and interpolation exactly as LASER runs them
        return laser(s, latent, embeddings, list(plan.controls), seed, ControlSettings(f_t=0.0, qk_t=0.0, kv_t=1.0))
    if method == "img2img":
        return img2img(s, latent, embeddings, plan.negative, seed)
    return naive(s, embeddings, plan.negative, seed)


# ------------------------------------------------------------------------------------------------ scoring


def kept_share(analysis: judge.Analysis, case: dict) -> float:
    """Share of the checks that should hold in every frame: each unchanged attribute of the changed object, each
    other object whole, the background."""
    scene = world.Scene.from_json(case["scene"])
    checks = []
    found = [d.attributes() for d in analysis.objects]
    for k, obj in enumerate(scene.objects):
        wanted = {a: v for a, v in obj.attributes().items() if k != 0 or a not in case["changed"]}
        checks.append(any(all(d[a] == v for a, v in wanted.items()) for d in found))
    checks.append(analysis.background == scene.background)
    return float(np.mean(checks))


def score(frames: np.ndarray, source: np.ndarray, case: dict) -> dict[str, float]:
    analyses = [judge.detect(f) for f in frames]
    smooth = judge.sequence_smoothness(list(frames))
    return {
        "psnr0": judge.psnr(frames[0], source),
        "ssim0": judge.ssim(frames[0], source),
        "target": judge.prompt_fidelity(frames[-1], case["target"], analyses[-1]).score,
        "kept": float(np.mean([kept_share(a, case) for a in analyses])),
        "pdv": smooth["pdv_pix"],
        "direct": smooth["directness_pix"],
        "jump": smooth["max_step_ratio_pix"],
    }


def to_images(vae, latents: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        img = vae.decode(latents)
    return (img.clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8).reshape(-1, *img.shape[-3:])


COLUMNS = ("psnr0", "ssim0", "target", "kept", "pdv", "direct", "jump")


def table(title: str, rows: dict[str, list[dict[str, float]]], seconds: dict[str, float], roundtrip=None) -> None:
    print(f"\n{title}")
    print(f"{'method':<11}" + "".join(f"{c:>9}" for c in COLUMNS) + f"{'s/anim':>9}")
    if roundtrip:
        print(f"{'VAE trip':<11}{np.mean(roundtrip[0]):>9.2f}{np.mean(roundtrip[1]):>9.3f}")
    for method, scores in rows.items():
        if not scores:
            continue
        cells = []
        for c in COLUMNS:
            v = np.array([r[c] for r in scores], dtype=float)
            v = v[np.isfinite(v)]
            cells.append(("{:>9.5f}" if c == "pdv" else "{:>9.2f}" if c == "psnr0" else "{:>9.3f}").format(v.mean()) if len(v) else f"{'n/a':>9}")
        print(f"{method:<11}" + "".join(cells) + f"{seconds[method] / len(scores):>9.1f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=0, help="use the first N cases (0 = all)")
    p.add_argument("--only", nargs="+", default=None, help="case ids to run")
    p.add_argument("--dev", action="store_true", help="cases of another stream instead of the frozen file: tune "
                   "anything on these, never on the frozen ones")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--frames", type=int, default=8, help="frames per segment")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=5.0)
    p.add_argument("--scheduler", default="ddim_uniform")
    p.add_argument("--denoise", type=float, default=0.6, help="img2img's KSampler denoise")
    p.add_argument("--caption", default="gold", choices=("gold", "judge"), help="P0: the scene's caption, or the judge's reading of the image")
    p.add_argument("--seed", type=int, default=0, help="case k uses seed + k")
    p.add_argument("--frame-negative", default="source", choices=("source", "empty", "fade"),
                   help="the laser rows' frame negative: the source prompt (LASER), the empty prompt, or fade (source to empty)")
    p.add_argument("--spacing", default="linear", choices=("linear", "even"),
                   help="the laser rows' frame weights: linear, or even steps along the path (a second sampling pass)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a ControlSettings field of the laser rows, e.g. conv_output_block=7 or qk_start_layer=4")
    p.add_argument("--save", default=None, help="folder for each animation's strip (PNG)")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    ensure_comfy(threads=args.threads or auto_threads())
    from PIL import Image

    from laser_story.llm.tasks.morph import plan_morph
    from laser_story.tinyworld import weights

    model, clip, vae, _meta = weights.load(weights.DEFAULT_WEIGHTS, expect_size=SIZE)
    from laser_story.attention.laser import ControlSettings

    fields = {k: float(v) if "." in v else int(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    setup = Setup(model, clip, vae, args.steps, args.cfg, args.scheduler, args.frames, args.denoise, args.frame_negative,
                  ControlSettings(**fields), args.spacing == "even")  # fmt: skip
    if args.dev:
        cases = [make_case(i, kind, "animate-dev") for i, kind in enumerate(KINDS)]
    else:
        cases = json.loads(CASES_FILE.read_text())["cases"]
    cases = [c for c in cases if args.only is None or c["id"] in args.only]
    cases = cases[: args.cases] if args.cases else cases
    rows = {m: [] for m in args.methods}
    by_kind: dict[str, dict[str, list]] = {}
    seconds = dict.fromkeys(args.methods, 0.0)
    group_seconds: dict[str, dict[str, float]] = {}
    roundtrip: tuple[list[float], list[float]] = ([], [])
    plans_right = 0
    for k, case in enumerate(cases):
        source = world.render(world.Scene.from_json(case["scene"]), SIZE)
        latent = vae.encode(torch.from_numpy(source).float()[None] / 255.0)
        trip = to_images(vae, latent)[0]
        roundtrip[0].append(judge.psnr(trip, source))
        roundtrip[1].append(judge.ssim(trip, source))
        caption = case["caption"] if args.caption == "gold" else judge.caption_of(source)
        plan = plan_morph(case["instruction"], caption)
        plans_right += list(plan.controls) == case["expected_controls"] and plan.prompts[-1] == case["target"]
        group = "0" if case["expected_controls"] == ["0"] else "1" if case["expected_controls"] == ["1"] else "2 / chain"
        for method in args.methods:
            start = time.perf_counter()
            frames = to_images(vae, animate(method, setup, latent, plan, args.seed + k))
            seconds[method] += time.perf_counter() - start
            group_seconds.setdefault(group, dict.fromkeys(args.methods, 0.0))[method] += time.perf_counter() - start
            result = score(frames, source, case)
            rows[method].append(result)
            by_kind.setdefault(group, {m: [] for m in args.methods})[method].append(result)
            if args.save:
                Path(args.save).mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.concatenate([source, *frames], 1)).save(Path(args.save) / f"{case['id']}-{method}.png")
        print(f"{case['id']:<26} {case['instruction']!r:<46} plan {'/'.join(plan.controls):<5} "
              + " ".join(f"{m} t{rows[m][-1]['target']:.2f} k{rows[m][-1]['kept']:.2f}" for m in args.methods), flush=True)
    print(f"\n{len(cases)} cases, {args.frames} frames per segment, {args.steps} steps, cfg {args.cfg}, {args.scheduler}, "
          f"img2img denoise {args.denoise}, P0 caption: {args.caption}, laser frame negative: {args.frame_negative}, "
          f"laser settings: {setup.settings}, spacing {args.spacing}; plans with the expected codes and target: "
          f"{plans_right}/{len(cases)}")  # fmt: skip
    table("all cases", rows, seconds, roundtrip)
    for group in sorted(by_kind):
        n = len(next(iter(by_kind[group].values())))
        table(f"cases whose change wants control {group} ({n})", by_kind[group], group_seconds[group])
    return 0


if __name__ == "__main__":
    if "--write-cases" in sys.argv:
        write_cases()
    else:
        raise SystemExit(main())
