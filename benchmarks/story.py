"""Character-consistent stories on the built-in tiny model (128x128), judged. Prints a table, never asserts.

For every story in ``benchmarks/data/story_cases.json`` (world stories of the named cast, 4-6 sentences with
he/she/him/her/they, the gold resolved sentence, who is present and where, and the background), every row
samples one frame per sentence with the same seeds:

* ``unresolved``   each sentence as written straight into CLIP (what plain prompting gives)
* ``rules``        the Story LLM Mapper with the rule-based planner, all mechanisms on
* ``llm``          ... with the LLM backend (``--llm``: llama.cpp serving the setup's Gemma 3 270M)
* ``gold``         ... with the gold plan (every reference resolved, characters and places known)
* ``gold -hold``, ``gold -share``, ``gold -fuse``: one mechanism off (``-fuse`` only with ``--fuser``);
  ``gold -hold -share``: the resolved, described prompts alone

Columns (means over frames; identity over characters with two or more frames):
  char-acc  ^  frames where every present character is drawn with its colour, shape and size and no absent
               cast member is drawn (StoryGPT-V's Char-Acc, the judge as classifier)
  char-f1   ^  micro F1 of the cast members drawn (colour and shape) against those present
  place     ^  present characters found at their place (the object of their colour and shape, judge's cell)
  setting   ^  frames whose background is the story's
  id-judge  ^  per character: share of its frames where what stands at its place has its majority look
  id-enc    ^  per character: mean image-encoder cosine between crops of its place across its frames
  fidelity  ^  judge prompt fidelity of each frame against its gold resolved sentence
  s/frame      wall time per frame (informative only)

    .venv/bin/python benchmarks/story.py                    # all stories, rows unresolved rules gold and ablations
    .venv/bin/python benchmarks/story.py --stories 4 --rows gold "gold -share"
    .venv/bin/python benchmarks/story.py --long 100         # one 100-frame story: peak memory and time per frame
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from laser_story.tinyworld import datasets, judge, world  # noqa: E402
from laser_story.tinyworld.host import auto_threads, ensure_comfy  # noqa: E402

CASES_FILE = ROOT / "benchmarks" / "data" / "story_cases.json"
ROWS = ("unresolved", "rules", "llm", "gold", "gold -hold", "gold -share", "gold -hold -share", "gold -fuse")
SIZE = 128


def make_cases(stream: str, n: int = 20) -> list[dict]:
    """Referential world stories of 4-6 sentences from ``stream``."""
    cases, seed = [], 0
    while len(cases) < n:
        story = datasets.story(seed, stream=stream)
        seed += 1
        texts = [s.text for s in story.sentences]
        referential = any(s.text.split()[0] in ("He", "She", "They") or " him." in s.text or " her." in s.text
                          for s in story.sentences)  # fmt: skip
        if len(texts) < 4 or not referential:
            continue
        cases.append({
            "id": f"{stream}-{seed - 1}", "text": story.text, "background": story.background,
            "characters": [{"name": c.name, "description": c.description} for c in story.characters],
            "frames": [{"sentence": s.text, "resolved": s.resolved, "present": list(s.present), "places": s.positions}
                       for s in story.sentences],
        })  # fmt: skip
    return cases


def write_cases(path: Path = CASES_FILE) -> None:
    """The frozen benchmark stories (written once; the file, not this function, is the benchmark)."""
    cases = make_cases("story-bench")
    path.write_text(json.dumps({"about": "Frozen world stories for benchmarks/story.py; do not regenerate.",
                                "cases": cases}, indent=1) + "\n")  # fmt: skip


def gold_plan(case: dict):
    from laser_story.llm.tasks.story import parse_story_plan

    setting = datasets.SETTING_PHRASE[case["background"]]
    return parse_story_plan({
        "task": "story", "characters": [{**c, "reference_image": None} for c in case["characters"]],
        "frames": [{"sentence": f["sentence"], "text": f["resolved"], "characters": f["present"], "setting": setting}
                   for f in case["frames"]],
    })  # fmt: skip


def gold_places(case: dict) -> list[dict[str, str]]:
    return [f["places"] for f in case["frames"]]


def crop(image: np.ndarray, place: str) -> np.ndarray:
    from laser_story.story.layout import place_box

    box = place_box(place)
    h, w = image.shape[:2]
    return image[int(box.y0 * h) : int(box.y1 * h), int(box.x0 * w) : int(box.x1 * w)]


def score(case: dict, images: np.ndarray, clip_vision) -> dict[str, list[float]]:
    from laser_story.tinyworld.encoder import image_embeds

    cast = {c.name: c for c in world.CAST}
    out: dict[str, list[float]] = {k: [] for k in ("char-acc", "tp", "fp", "fn", "place", "setting", "fidelity")}
    looks: dict[str, list[tuple]] = {}
    crops: dict[str, list[np.ndarray]] = {}
    for frame, image in zip(case["frames"], images, strict=True):
        analysis = judge.detect(image)
        present = set(frame["present"])
        drawn = {n for n, c in cast.items() if any(d.colour == c.colour and d.shape == c.shape for d in analysis.objects)}
        full = all(any((d.colour, d.shape, d.size) == (cast[n].colour, cast[n].shape, cast[n].size) for d in analysis.objects)
                   for n in present)  # fmt: skip
        out["char-acc"].append(float(full and not (drawn - present)))
        out["tp"].append(len(drawn & present))
        out["fp"].append(len(drawn - present))
        out["fn"].append(len(present - drawn))
        for name, place in frame["places"].items():
            c = cast[name]
            out["place"].append(float(any(d.colour == c.colour and d.shape == c.shape and d.position == place
                                          for d in analysis.objects)))  # fmt: skip
            region = crop(image, place)
            found = judge.detect(region).objects
            looks.setdefault(name, []).append((found[0].colour, found[0].shape) if found else None)
            crops.setdefault(name, []).append(region)
        out["setting"].append(float(analysis.background == case["background"]))
        fid = judge.prompt_fidelity(image, f"{frame['resolved']} {datasets.SETTING_PHRASE[case['background']]}", analysis)
        if fid.score is not None:
            out["fidelity"].append(fid.score)
    out["id-judge"], out["id-enc"] = [], []
    for name, seen in looks.items():
        if len(seen) < 2:
            continue
        mode, count = Counter(seen).most_common(1)[0]
        out["id-judge"].append(count / len(seen) if mode is not None else 0.0)
        batch = torch.stack([torch.from_numpy(np.array(Image.fromarray(r).resize((64, 64)))).float() / 255
                             for r in crops[name]])  # fmt: skip
        emb = image_embeds(clip_vision, batch)
        sim = emb @ emb.T
        n = len(seen)
        out["id-enc"].append(float((sim.sum() - n) / (n * (n - 1))))
    return out


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stories", type=int, default=0, help="use the first N stories (0 = all)")
    p.add_argument("--dev", action="store_true", help="stories from another stream instead of the frozen file: choose "
                                                      "settings on these, report on the frozen ones")
    p.add_argument("--rows", nargs="+", default=["unresolved", "rules", "gold", "gold -hold", "gold -share"], choices=ROWS)
    p.add_argument("--llm", action="store_true", help="add the llm row (the pack's llama.cpp server, --llm-model)")
    p.add_argument("--llm-model", default="gemma-3-270m-q4_k_m.gguf",
                   help="GGUF in models/LLM, or laser-story-planner-lora.gguf (the tuned adapter)")
    p.add_argument("--weights", default="", help="tiny-model file to sample with (default the shipped 128x128 one; "
                   "tinyworld-charldm.safetensors is the Char-LDM fine-tune, used with its --fuser)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0, help="frame i of every story uses seed + i")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--prompt-style", default="sentence", choices=("sentence", "caption"), help="how frames are prompted")
    p.add_argument("--hold-boost", type=float, default=0.0, help="log-weight of a character's tokens inside its region")
    p.add_argument("--share-from", type=float, default=0.1, help="consistent self-attention from this fraction of the steps")
    p.add_argument("--fuser", default=None, help="a character-fuser file (adds the -fuse row)")
    p.add_argument("--references", action="store_true", help="give every character a reference image (a render of it "
                   "alone in the center on grey): the fuser fuses its feature, consistency anchors on it")
    p.add_argument("--long", type=int, default=0, help="instead: one story of N frames, peak memory and s/frame")
    p.add_argument("--save", default=None, help="folder for each story's strip per row (PNG)")
    p.add_argument("--threads", type=int, default=0)
    return p.parse_args()


def reference_images(plan) -> dict[str, torch.Tensor]:
    """Each cast member of ``plan`` rendered alone in the center on grey, as an [H, W, 3] image."""
    cast = {c.name: c for c in world.CAST}
    images = {}
    for name in (c.name for c in plan.characters if c.name in cast):
        c = cast[name]
        obj = world.make_object(world.rng_for("story-bench-reference", name), c.shape, c.colour, c.size, "center", name)
        images[name] = torch.from_numpy(world.render(world.Scene((obj,), "grey"), SIZE)).float() / 255.0
    return images


def story_input(row: str, case: dict, clip, clip_vision, fuser, llm_config, prompt_style: str = "sentence",
                references: bool = False):
    from laser_story.llm.tasks.story import plan_story
    from laser_story.story import pipeline

    if row == "rules" or row == "unresolved":
        plan = plan_story(case["text"])
    elif row == "llm":
        from laser_story.llm.config import PACK_LLM_DIR, LLMConfig
        from laser_story.llm.planner import PlanRequest, make_plan

        models = [str(Path(ensure_llm_dir())), PACK_LLM_DIR]
        plan = make_plan(PlanRequest(task="story", text=case["text"]), LLMConfig.from_json(llm_config),
                         cache_dir=str(ROOT / ".cache" / "story-bench-llm"), models_dirs=models).plan  # fmt: skip
    else:
        plan = gold_plan(case)
    story = pipeline.prepare(plan, clip, reference_images(plan) if references else None, clip_vision, fuser, prompt_style)
    return pipeline.unresolved_input(story, clip) if row == "unresolved" else story


def ensure_llm_dir() -> str:
    import folder_paths

    return str(Path(folder_paths.models_dir) / "LLM")


def options_for(row: str, args, fuser) -> object:
    from laser_story.attention.story import StorySettings
    from laser_story.story.pipeline import SampleOptions

    attention = StorySettings(hold="-hold" not in row, consistency="-share" not in row, hold_boost=args.hold_boost,
                              share_from=args.share_from)
    return SampleOptions(steps=args.steps, cfg=args.cfg, seed=args.seed, width=SIZE, height=SIZE, batch=args.batch,
                         fuse=fuser is not None and "-fuse" not in row, attention=attention)  # fmt: skip


def long_run(args, model, clip, vae) -> None:
    from laser_story.llm.tasks.story import parse_story_plan
    from laser_story.story import pipeline

    names = ["Pip", "Bo", "Rosa"]
    frames = [{"sentence": f"{names[i % 3]} moves {datasets.POSITION_PHRASE[world.POSITIONS[i % 9]]}.",
               "text": f"{names[i % 3]} moves {datasets.POSITION_PHRASE[world.POSITIONS[i % 9]]}.",
               "characters": [names[i % 3]], "setting": "a sand background"} for i in range(args.long)]  # fmt: skip
    cast = {c.name: c for c in world.CAST}
    plan = parse_story_plan({"task": "story", "frames": frames,
                             "characters": [{"name": n, "description": cast[n].description} for n in names]})
    story = pipeline.prepare(plan, clip)
    options = options_for("gold", args, None)
    print(f"{'frames':>7} {'s/frame':>8} {'peak RSS MiB':>13} {'bank MiB':>9}")
    for n in sorted({min(args.long, k) for k in (8, 24, args.long)}):
        start, stats = time.perf_counter(), {}
        pipeline.sample(model, clip, vae, story, options, frames=list(range(n)), stats=stats)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{n:>7} {(time.perf_counter() - start) / n:>8.3f} {rss:>13.0f} {stats['bank_bytes'] / 2**20:>9.2f}", flush=True)


def main() -> int:
    args = parse_args()
    ensure_comfy(threads=args.threads or auto_threads())
    from laser_story.story import fuser as fuser_file
    from laser_story.story import pipeline
    from laser_story.story.strip import comic_strip
    from laser_story.tinyworld import encoder, weights

    path = str(Path(weights.WEIGHTS_DIR) / args.weights) if args.weights and "/" not in args.weights else args.weights
    model, clip, vae, _ = weights.load(path or weights.DEFAULT_WEIGHTS)
    if args.long:
        long_run(args, model, clip, vae)
        return 0
    clip_vision, _, _ = encoder.load()
    fuser = fuser_file.load(args.fuser)[0] if args.fuser else None
    rows = [r for r in args.rows if r != "gold -fuse" or fuser is not None] + (["llm"] if args.llm else [])
    llm_config = None
    if "llm" in rows:
        from laser_story.llm.config import LLMConfig

        llm_config = LLMConfig(backend="llama_cpp", model=args.llm_model, n_ctx=4096).to_json()
    cases = make_cases("story-dev") if args.dev else json.loads(CASES_FILE.read_text())["cases"]
    cases = cases[: args.stories] if args.stories else cases
    header = f"{'row':<13} {'char-acc':>8} {'char-f1':>8} {'place':>6} {'setting':>8} {'id-judge':>9} {'id-enc':>7} {'fidelity':>9} {'s/frame':>8}"
    print(f"{len(cases)} stories, {sum(len(c['frames']) for c in cases)} frames, {args.steps} steps, cfg {args.cfg}, "
          f"weights {Path(path or weights.DEFAULT_WEIGHTS).name}" + (f", fuser {Path(args.fuser).name}" if fuser else "")
          + (", a reference image per character" if args.references else ""))
    print(header)
    for row in rows:
        totals: dict[str, list[float]] = {}
        seconds = frames = 0
        for case in cases:
            story = story_input(row, case, clip, clip_vision, fuser, llm_config, args.prompt_style, args.references)
            start = time.perf_counter()
            images, _ = pipeline.sample(model, clip, vae, story, options_for(row, args, fuser))
            seconds += time.perf_counter() - start
            frames += len(images)
            pixels = (images.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
            for key, values in score(case, pixels, clip_vision).items():
                totals.setdefault(key, []).extend(values)
            if args.save:
                Path(args.save).mkdir(parents=True, exist_ok=True)
                strip = comic_strip(images, [f.sentence for f in story.frames])
                Image.fromarray((strip[0].numpy() * 255).astype(np.uint8)).save(Path(args.save) / f"{case['id']}-{row.replace(' ', '')}.png")
        tp, fp, fn = sum(totals["tp"]), sum(totals["fp"]), sum(totals["fn"])
        f1 = 2 * tp / max(1, 2 * tp + fp + fn)
        mean = {k: float(np.mean(v)) if v else float("nan") for k, v in totals.items()}
        print(f"{row:<13} {mean['char-acc']:>8.3f} {f1:>8.3f} {mean['place']:>6.3f} {mean['setting']:>8.3f} "
              f"{mean['id-judge']:>9.3f} {mean['id-enc']:>7.3f} {mean['fidelity']:>9.3f} {seconds / frames:>8.3f}", flush=True)
    return 0


if __name__ == "__main__":
    if "--write-cases" in sys.argv:
        write_cases()
    else:
        raise SystemExit(main())
