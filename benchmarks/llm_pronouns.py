"""Pronoun resolution of the rule-based planner vs Gemma 3 270M on the labelled stories, plus Gemma's repair rate.

    .venv/bin/python benchmarks/llm_pronouns.py            # both planners, all stories (about 5 min on 2 cores)
    .venv/bin/python benchmarks/llm_pronouns.py --no-gemma # the rule-based planner only (under a second)
    .venv/bin/python benchmarks/llm_pronouns.py --all-tasks  # also Gemma's repair/retry rate on morph and expand

A reference counts as right when the plan's frame for its sentence resolves that mention (the same occurrence)
to the same characters (``llm.evaluation``). Stories marked "dev" were written while the rules were developed;
"heldout" ones were written afterwards and never used to tune anything, so their score is the honest one.
Gemma runs through the pack's own managed llama.cpp server (the ``llama_cpp`` backend) with no disk cache, so
every reply is a real call. The better planner on all stories is the pack's default backend.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from laser_story.llm.backends import Sampling, make_backend  # noqa: E402
from laser_story.llm.config import DEFAULT_GGUF, PACK_LLM_DIR, LLMConfig  # noqa: E402
from laser_story.llm.errors import LLMError  # noqa: E402
from laser_story.llm.evaluation import Score, load_stories, score_story, story_text  # noqa: E402
from laser_story.llm.llama_server import POOL  # noqa: E402
from laser_story.llm.planner import LLMPlanner, PlanRequest  # noqa: E402
from laser_story.llm.structured import CallStats  # noqa: E402
from laser_story.llm.tasks.story import plan_story  # noqa: E402


def models_dir() -> Path:
    host_env = REPO / ".cache" / "host.env"
    comfy = Path(host_env.read_text().strip().split("=", 1)[1]) if host_env.exists() else REPO / ".host" / "ComfyUI"
    return comfy / "models" / "LLM"


def add(total: CallStats, part: CallStats) -> None:
    for field in dataclasses.fields(total):
        setattr(total, field.name, getattr(total, field.name) + getattr(part, field.name))


def score_rows(name: str, plans: dict[str, object], stories: list[dict]) -> list[tuple[str, str, int, Score]]:
    rows = []
    for split in ("dev", "heldout", "all"):
        chosen = [s for s in stories if split == "all" or s["split"] == split]
        score = Score()
        for story in chosen:
            score.add(score_story(plans.get(story["id"]), story))
        rows.append((name, split, len(chosen), score))
    return rows


def print_rows(rows: list[tuple[str, str, int, Score]]) -> None:
    print(f"{'planner':<36}{'stories':<12}{'pronouns right':<20}{'all references right'}")
    for name, split, count, score in rows:
        pronouns = f"{score.pronouns_correct}/{score.pronouns_total} {score.pronoun_accuracy:6.1%}"
        everything = f"{score.correct}/{score.total} {score.accuracy:6.1%}"
        print(f"{name:<36}{split + ' ' + str(count):<12}{pronouns:<20}{everything}")


def rate(stats: CallStats, plans: int, failed: int) -> str:
    calls = max(stats.calls, 1)
    return (
        f"{plans} plans, {stats.calls} calls; replies repaired: {stats.repaired} ({stats.repaired / calls:.0%}) = "
        f"syntax {stats.syntax_repaired}, schema coercion {stats.schema_coerced}, content fix {stats.content_fixed}; "
        f"retries {stats.retries} ({stats.retries / calls:.0%}); {failed} plans failed after all attempts"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stories", type=Path, default=REPO / "tests" / "data" / "stories")
    parser.add_argument("--model", default=DEFAULT_GGUF, help="GGUF file name in models/LLM (or a path)")
    parser.add_argument("--no-gemma", action="store_true", help="score the rule-based planner only")
    parser.add_argument("--all-tasks", action="store_true", help="also measure repairs on the morph/expand inputs")
    parser.add_argument("--max-tokens", type=int, default=768)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0 = half the cores)")
    args = parser.parse_args()

    stories = load_stories(args.stories)
    refs = sum(len(s["references"]) for story in stories for s in story["sentences"])
    print(f"Pronoun and reference resolution on {len(stories)} labelled stories ({refs} references)\n")
    started = time.perf_counter()
    rule_plans = {story["id"]: plan_story(story_text(story)) for story in stories}
    rows = score_rows("rule-based", rule_plans, stories)
    print(f"rule-based planner: {time.perf_counter() - started:.2f} s for all stories")
    if args.no_gemma:
        print_rows(rows)
        return 0

    config = LLMConfig(backend="llama_cpp", model=args.model, max_attempts=args.attempts, n_threads=args.threads)
    backend = make_backend(config, [str(models_dir()), PACK_LLM_DIR])
    planner = LLMPlanner(backend, cache=None, max_attempts=args.attempts)
    sampling = Sampling(temperature=args.temperature, seed=args.seed, max_tokens=args.max_tokens)
    gemma_plans, story_stats, failed = {}, CallStats(), 0
    started = time.perf_counter()
    try:
        for story in stories:
            try:
                result = planner.plan(PlanRequest("story", story_text(story), sampling=sampling))
            except LLMError as exc:
                failed += 1
                print(f"  {story['id']}: no valid plan ({str(exc)[:160]})")
                continue
            gemma_plans[story["id"]] = result.plan
            add(story_stats, result.stats)
        story_seconds = time.perf_counter() - started
        extra = {}
        if args.all_tasks:
            inputs = json.loads((REPO / "tests" / "data" / "llm_inputs.json").read_text())
            for task in ("morph", "expand", "story"):
                stats, task_failed = CallStats(), 0
                for item in inputs[task]:
                    request = PlanRequest(
                        task,
                        item["text"],
                        image_caption=item.get("image_caption", ""),
                        directions=tuple(item.get("directions", ())),
                        sampling=Sampling(0.2, args.seed, {"morph": 200, "expand": 80, "story": 320}[task]),
                    )
                    try:
                        add(stats, planner.plan(request).stats)
                    except LLMError:
                        task_failed += 1
                extra[task] = rate(stats, len(inputs[task]), task_failed)
    finally:
        POOL.stop_all()

    rows += score_rows(f"gemma ({backend.model_id})", gemma_plans, stories)
    print(f"gemma via llama.cpp: {story_seconds:.0f} s for all stories\n")
    print_rows(rows)
    print(f"\nGemma replies, story task on the labelled stories: {rate(story_stats, len(stories), failed)}")
    for task, line in extra.items():
        print(f"Gemma replies, {task} task on tests/data/llm_inputs.json: {line}")
    rules_all, gemma_all = rows[2][3], rows[5][3]
    winner = "rules" if rules_all.pronoun_accuracy >= gemma_all.pronoun_accuracy else "llama_cpp"
    print(
        f"\nDefault backend by pronoun accuracy over all stories: {winner} "
        f"(rule-based {rules_all.pronoun_accuracy:.1%} vs Gemma {gemma_all.pronoun_accuracy:.1%})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
