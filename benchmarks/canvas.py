"""Canvas expansion on the built-in tiny model (128x128 windows), judged. Prints a table, never asserts.

For every task in ``benchmarks/data/canvas_tasks.json`` (a rendered world scene, a description naming the
objects the canvas should end up with, the directions), the same seeds for every method:

* ``regional``    ours, tuning-free: global caption over the window, the local caption held to the new strip
* ``concat``      ours with both captions in one prompt
* ``outpaint``    what core nodes give: ImagePadForOutpaint + VAEEncodeForInpaint + KSampler over the whole
                  canvas each step, prompted with the global caption only
* ``local-only``  ours with the local captions and no global caption
* ``no-llm``      ours with the input caption as the global and every local caption
* ``trained``     the built-in expansion model (``--expansion``, default the shipped file when present): the
                  paper's trained path, [global | local | visual] context and inpainting inputs

Captions come from the rule-based planner (``llm.tasks.expand.plan_expand``). Columns (means over tasks):
  seam        v  gradient across each seam / gradient beside it (judge.seam_visibility; 1 = invisible)
  local obj   ^  the new strip holds the object its step adds (judge: colour and shape, centre in the strip)
  local col   ^  ... its colour at least
  coherence   ^  named objects found on the final canvas / (named + objects nobody named)
  drift       v  mean |background colour of each 64-px block - the first block| (0..255)
  s/step         wall time per step (informative only; outpainting re-samples the whole canvas)

    .venv/bin/python benchmarks/canvas.py                 # all tasks
    .venv/bin/python benchmarks/canvas.py --tasks 4 --methods regional outpaint
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

from laser_story.canvas import geometry  # noqa: E402
from laser_story.tinyworld import judge, world  # noqa: E402
from laser_story.tinyworld.host import auto_threads, ensure_comfy  # noqa: E402

TASKS_FILE = ROOT / "benchmarks" / "data" / "canvas_tasks.json"
METHODS = ("regional", "concat", "outpaint", "local-only", "no-llm", "trained")
SIZE = 128
STEP = 64


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=0, help="use the first N tasks (0 = all)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=5.0)
    p.add_argument("--overlap", type=int, default=16)
    p.add_argument("--seed", type=int, default=0, help="task k uses seed + k")
    p.add_argument("--methods", nargs="+", default=[m for m in METHODS if m != "trained"], choices=METHODS)
    p.add_argument("--weights", default=None, help="tiny-model weights (default: the shipped file)")
    p.add_argument("--expansion", default=None, help="expansion-model weights for the trained row (default: shipped)")
    p.add_argument("--save", default=None, help="folder to save every canvas as a PNG")
    p.add_argument("--threads", type=int, default=0)
    return p.parse_args()


def start_image(task: dict, seed: int) -> torch.Tensor:
    obj = world.make_object(world.rng_for("canvas-bench", seed), **task["start"])
    scene = world.Scene((obj,), task["background"])
    return torch.from_numpy(world.render(scene, SIZE)).float() / 255.0


def outpaint(model, clip, vae, image: torch.Tensor, caption: str, directions: list[str], steps: int, cfg: float,
             seed: int) -> tuple[torch.Tensor, list[geometry.Step]]:
    """The core-node way: pad, VAEEncodeForInpaint, KSampler on the whole canvas, decode; once per step."""
    import nodes

    from laser_story.tinyworld.evaluate import encode

    positive, negative = encode(clip, caption), encode(clip, "")
    canvas, done = image, []
    for i, direction in enumerate(directions):
        step = geometry.plan_step(canvas.shape[0], canvas.shape[1], direction, STEP, SIZE)
        pads = {"left": 0, "top": 0, "right": 0, "bottom": 0, {"up": "top", "down": "bottom"}.get(direction, direction): STEP}
        padded, mask = nodes.ImagePadForOutpaint().expand_image(canvas[None], feathering=24, **pads)
        (latent,) = nodes.VAEEncodeForInpaint().encode(vae, padded, mask, grow_mask_by=6)
        (sampled,) = nodes.common_ksampler(model, seed + i, steps, cfg, "euler", "normal", positive, negative, latent)
        canvas = vae.decode(sampled["samples"])[0].float().cpu()
        done.append(step)
    return canvas, done


def ours(model, clip, vae, image: torch.Tensor, global_caption: str, steps_: list[tuple[str, str]], mode: str,
         args: argparse.Namespace, seed: int, clip_vision=None) -> tuple[torch.Tensor, list[geometry.Step]]:
    from laser_story.canvas.expand import Settings, expand

    settings = Settings(window=SIZE, step=STEP, overlap=args.overlap, steps=args.steps, cfg=args.cfg, seed=seed,
                        conditioning=mode)
    result = expand(model, clip, vae, image, global_caption, steps_, settings, clip_vision=clip_vision)
    h, w = image.shape[:2]
    done = []
    for direction, _ in steps_:
        done.append(geometry.plan_step(h, w, direction, STEP, SIZE))
        h, w = done[-1].size
    return result.canvas, done


def final_box(steps: list[geometry.Step], k: int) -> geometry.Box:
    """Step k's new strip in the coordinates of the final canvas (later left/up steps shift it)."""
    box = steps[k].new
    top = sum(s.offset[0] for s in steps[k + 1 :])
    left = sum(s.offset[1] for s in steps[k + 1 :])
    return geometry.Box(box.top + top, box.left + left, box.height, box.width)


def seams(steps: list[geometry.Step]) -> tuple[list[int], list[int]]:
    xs, ys = [], []
    for k, step in enumerate(steps):
        box = final_box(steps, k)
        if step.direction == "right":
            xs.append(box.left)
        elif step.direction == "left":
            xs.append(box.left + box.width)
        elif step.direction == "down":
            ys.append(box.top)
        else:
            ys.append(box.top + box.height)
    return xs, ys


def detections(canvas: np.ndarray) -> list[tuple[str, str, float, float]]:
    """(colour, shape, cx, cy) of the objects on a 128-high or 128-wide canvas, from square windows every 64 px."""
    h, w = canvas.shape[:2]
    along_x = w >= h
    length = w if along_x else h
    found: list[tuple[str, str, float, float]] = []
    for start in range(0, max(1, length - SIZE + 1), STEP):
        tile = canvas[:, start : start + SIZE] if along_x else canvas[start : start + SIZE]
        for d in judge.detect(tile).objects:
            cx = d.cx * SIZE + (start if along_x else 0)
            cy = d.cy * SIZE + (0 if along_x else start)
            if not any(c == d.colour and abs(cx - x) < 24 and abs(cy - y) < 24 for c, _, x, y in found):
                found.append((d.colour, d.shape, cx, cy))
    return found


def score(canvas_t: torch.Tensor, task: dict, steps: list[geometry.Step]) -> dict[str, float]:
    canvas = (canvas_t.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    xs, ys = seams(steps)
    found = detections(canvas)
    local_obj, local_col = [], []
    for k, obj in enumerate(task["add"]):
        box = final_box(steps, k)
        inside = [(c, s) for c, s, x, y in found if box.left <= x < box.left + box.width and box.top <= y < box.top + box.height]
        local_col.append(float(any(c == obj["colour"] for c, _ in inside)))
        local_obj.append(float(any(c == obj["colour"] and s == obj["shape"] for c, s in inside)))
    named = [task["start"], *task["add"]]
    matched = sum(any(c == o["colour"] and s == o["shape"] for c, s, _, _ in found) for o in named)
    unnamed = sum(not any(c == o["colour"] for o in named) for c, _, _, _ in found)
    along_x = canvas.shape[1] >= canvas.shape[0]
    blocks = [canvas[:, i : i + STEP] if along_x else canvas[i : i + STEP] for i in range(0, max(canvas.shape[:2]), STEP)]
    medians = [np.median(b.reshape(-1, 3), axis=0) for b in blocks if b.size]
    drift = float(np.mean([np.abs(m - medians[0]).mean() for m in medians[1:]])) if len(medians) > 1 else 0.0
    return {
        "seam": judge.seam_visibility(canvas, seams_x=xs, seams_y=ys),
        "local_obj": float(np.mean(local_obj)),
        "local_col": float(np.mean(local_col)),
        "coherence": matched / (len(named) + unnamed),
        "drift": drift,
    }


def main() -> None:
    args = parse_args()
    ensure_comfy(cpu=True, threads=args.threads or auto_threads())
    import comfy.utils

    comfy.utils.PROGRESS_BAR_ENABLED = False  # the core sampler's own bar would interleave with the table
    from laser_story.llm.tasks.expand import plan_expand
    from laser_story.tinyworld import weights

    model, clip, vae, meta = weights.load(args.weights or weights.DEFAULT_WEIGHTS, expect_size=SIZE)
    expansion_model = clip_vision = None
    if "trained" in args.methods:
        from laser_story.tinyworld import encoder, expansion

        expansion_model, _ = expansion.load(args.expansion or expansion.DEFAULT_FILE)
        clip_vision, _, _ = encoder.load()
    tasks = json.loads(TASKS_FILE.read_text())[: args.tasks or None]
    rows: dict[str, list[dict[str, float]]] = {m: [] for m in args.methods}
    seconds: dict[str, float] = {m: 0.0 for m in args.methods}
    n_steps = 0
    save = Path(args.save) if args.save else None
    if save:
        save.mkdir(parents=True, exist_ok=True)
    for k, task in enumerate(tasks):
        seed = args.seed + k
        image = start_image(task, seed)
        plan = plan_expand(task["description"], tuple(task["directions"]), task["image_caption"])
        local = [(s.direction, s.caption) for s in plan.steps]
        n_steps += len(local)
        for method in args.methods:
            t0 = time.perf_counter()
            if method == "outpaint":
                canvas, steps = outpaint(model, clip, vae, image, plan.global_caption, task["directions"], args.steps,
                                         args.cfg, seed)
            elif method == "no-llm":
                repeated = [(d, task["image_caption"]) for d in task["directions"]]
                canvas, steps = ours(model, clip, vae, image, task["image_caption"], repeated, "regional", args, seed)
            elif method == "trained":
                canvas, steps = ours(expansion_model, clip, vae, image, plan.global_caption, local, "regional", args, seed,
                                     clip_vision)
            else:
                mode = {"regional": "regional", "concat": "concat", "local-only": "local only"}[method]
                canvas, steps = ours(model, clip, vae, image, plan.global_caption, local, mode, args, seed)
            seconds[method] += time.perf_counter() - t0
            rows[method].append(score(canvas, task, steps))
            if save:
                from PIL import Image

                Image.fromarray((canvas.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)).save(save / f"{task['id']}_{method}.png")
        print(f"{task['id']} {'+'.join(task['directions']):<12} " + "  ".join(
            f"{m} obj {rows[m][-1]['local_obj']:.2f} seam {rows[m][-1]['seam']:.2f}" for m in args.methods), flush=True)
    print()
    print(f"model {args.weights or weights.DEFAULT_WEIGHTS} ({meta.get('command', '?')}); {len(tasks)} tasks, {n_steps} steps "
          f"of {STEP} px, window {SIZE}, {args.steps} sampling steps, cfg {args.cfg}, overlap {args.overlap}, seeds "
          f"{args.seed}..{args.seed + len(tasks) - 1}")
    cols = [("seam", "seam v"), ("local_obj", "local obj ^"), ("local_col", "local col ^"), ("coherence", "coherence ^"),
            ("drift", "drift v")]
    print(f"{'method':<12}" + "".join(f"{title:>14}" for _, title in cols) + f"{'s/step':>10}")
    for m in args.methods:
        print(f"{m:<12}" + "".join(f"{np.mean([r[key] for r in rows[m]]):>14.3f}" for key, _ in cols)
              + f"{seconds[m] / max(1, n_steps):>10.2f}")


if __name__ == "__main__":
    main()
