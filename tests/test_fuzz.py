"""Property-based fuzzing of every parser and text input of the pack (no ComfyUI needed).

Property: each input either gives a valid plan or raises the pack's own error, whose message starts with
the name of the input it was given under (and names the field); never another exception, never a hang
(hypothesis' deadline bounds the time per input).
"""

from __future__ import annotations

import json
import os
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laser_story.llm.config import LLMConfig, env_name_problem, resolve_model_path
from laser_story.llm.errors import LLMConfigError
from laser_story.llm.planner import MAX_TEXT_CHARS, PlanRequest, make_plan
from laser_story.llm.structured import accept_reply
from laser_story.llm.tasks import REGISTRY, parse_plan
from laser_story.llm.tasks import expand as expand_task
from laser_story.llm.tasks import morph as morph_task
from laser_story.llm.tasks import story as story_task
from laser_story.llm.tasks.base import PlanError

# LASER_STORY_FUZZ_EXAMPLES raises the examples per property for a long local run (CI uses the default).
FUZZ = settings(max_examples=int(os.environ.get("LASER_STORY_FUZZ_EXAMPLES", "150")), deadline=2000,
                suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40)
json_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=12), kids, max_size=5),
                           max_leaves=30)
words = st.text(alphabet=string.printable + "äéß漢字\u202e\u0000\u200b", max_size=200)

VALID = {
    "morph": morph_task.plan_morph("a red cat turns into a blue dog, then jumps").to_json(),
    "expand": expand_task.plan_expand("a beach with children, a dog and a pier", ("left", "right", "up")).to_json(),
    "story": story_task.plan_story("Mia met Tom at the beach. She gave him a shell. They sat on the sand.").to_json(),
}


def check(call, what: str):
    """Run ``call``; a PlanError must name ``what``; anything else than a plan or a PlanError fails the test."""
    try:
        return call()
    except PlanError as exc:
        assert str(exc).startswith(what), f"error does not name the input {what!r}: {exc}"
        return None


def mutate(data, path: list, value, delete: bool):
    """``data`` with the element at ``path`` (keys / indices, taken modulo the container size) replaced or deleted."""
    if not path or not isinstance(data, (dict, list)) or not data:
        return value
    keys = list(data) if isinstance(data, dict) else list(range(len(data)))
    key = keys[path[0] % len(keys)]
    copy = dict(data) if isinstance(data, dict) else list(data)
    if delete and len(path) == 1:
        del copy[key]
    else:
        copy[key] = mutate(data[key], path[1:], value, delete)
    return copy


@pytest.mark.parametrize("task", list(REGISTRY))
@FUZZ
@given(data=json_values)
def test_random_json_gives_a_plan_or_names_the_field(task, data):
    plan = check(lambda: parse_plan({"task": task, **data} if isinstance(data, dict) else data, "plan", task), "plan")
    assert plan is None or plan.to_json()["task"] == task


@pytest.mark.parametrize("task", list(REGISTRY))
@FUZZ
@given(path=st.lists(st.integers(0, 50), min_size=1, max_size=4), value=json_values, delete=st.booleans())
def test_mutated_valid_plans_give_a_plan_or_name_the_field(task, path, value, delete):
    mutated = mutate(VALID[task], path, value, delete)
    plan = check(lambda: parse_plan(mutated, "plan", task), "plan")
    if plan is not None:  # a plan that parses is valid: it survives its own round trip unchanged
        assert REGISTRY[task].parse(plan.to_json(), "plan") == plan


@pytest.mark.parametrize("text", [
    "", "{", "[" * 100_000, '{"a":' * 50_000, json.dumps({"task": "morph", "prompts": ["x" * 1_000_000, "y"], "controls": ["0"]}),
    "\x00\x01", "null", "1e999", '"plan"', "[]",
])  # fmt: skip
def test_pathological_plan_text(text):
    for task in REGISTRY:
        check(lambda task=task: parse_plan(text, "plan_override", task), "plan_override")


@FUZZ
@given(prompts=words, controls=st.text(alphabet="0123 ,;x-9", max_size=20), negative=words, frames=st.integers(-5, 200))
def test_typed_prompts_and_controls(prompts, controls, negative, frames):
    plan = check(lambda: morph_task.typed_plan(prompts, controls, negative, frames), "prompts/controls")
    assert plan is None or len(plan.controls) == len(plan.prompts) - 1


@FUZZ
@given(text=st.text(alphabet=string.ascii_letters + " ,;x*0123456789\t\n", max_size=80))
def test_typed_directions(text):
    steps = check(lambda: expand_task.parse_directions(text), "directions")
    assert steps is None or set(steps) <= set(expand_task.DIRECTIONS)


STORY_WORDS = st.sampled_from(["he", "she", "they", "him", "her", "it", "his", "their", "Mia", "Tom", "the boy", "a dog",
                               "turns into", "then", "and", ".", "!", "?", ",", "\n", "\x07", "said", "\"Hi\""])  # fmt: skip


@pytest.mark.parametrize("task", list(REGISTRY))
@FUZZ
@given(text=st.one_of(words, st.lists(STORY_WORDS, max_size=60).map(" ".join)), caption=st.sampled_from(["", "a red star"]))
def test_description_and_story_text_with_the_rule_based_planner(task, text, caption):
    def plan():
        return make_plan(PlanRequest(task, text, image_caption=caption, directions=("left", "up"))).plan

    result = check(plan, "text")
    assert result is None or result.to_json()["task"] == task


@pytest.mark.parametrize("task", list(REGISTRY))
@pytest.mark.parametrize("text", [
    "x" * (MAX_TEXT_CHARS + 1), "Mia ran. She fell. " * 55_000, "he she they him her it " * 3000, "no sentence ends here " * 900, "\x00\x1b[2J" * 4000,
    ". . . ! ? " * 2000,
])  # fmt: skip
def test_long_and_strange_texts_are_planned_or_refused_by_name(task, text):
    check(lambda: make_plan(PlanRequest(task, text, directions=("right",))).plan, "text")


REPLY_PATHS = {
    "morph": (morph_task.REPLY_SCHEMA, morph_task.normalise_reply),
    "expand": (expand_task.LOCAL_SCHEMA, expand_task.normalise_caption("caption")),
    "story": (story_task.story_schema(3), lambda obj: story_task.normalise_story(obj, ["Mia ran.", "She fell.", "Tom came."])),
}


@pytest.mark.parametrize("task", list(REPLY_PATHS))
@FUZZ
@given(reply=st.one_of(json_values.map(json.dumps), words, json_values.map(lambda v: "Sure! ```json\n" + json.dumps(v)[:-1])))
def test_llm_replies_through_the_repair_path(task, reply):
    """A reply is repaired into a plan or rejected with a ValueError that says why (then retried or reported)."""
    schema, normalise = REPLY_PATHS[task]
    try:
        accept_reply(reply, schema, normalise)
    except ValueError as exc:
        assert str(exc)


config_values = st.one_of(words, st.integers(-10, 10**6), st.floats(allow_nan=True), st.booleans(), st.none(), json_values)


@FUZZ
@given(data=st.dictionaries(st.sampled_from(sorted(LLMConfig.__dataclass_fields__) + ["api_key", "x"]), config_values,
                            max_size=8))
def test_llm_config_from_any_json_is_a_config_or_a_config_error(data):
    try:
        config = LLMConfig.from_json(data)
    except LLMConfigError as exc:
        assert str(exc)
    else:
        assert LLMConfig.from_json(config.to_json()) == config


@FUZZ
@given(model=words, name=words)
def test_model_names_and_key_variable_names(model, name, tmp_path_factory):
    folder = tmp_path_factory.getbasetemp() / "models-LLM"
    folder.mkdir(exist_ok=True)
    try:
        path = resolve_model_path(model, [str(folder)], suffix=".gguf")
    except LLMConfigError as exc:
        assert "model" in str(exc)
    else:
        assert path.suffix == ".gguf"
    problem = env_name_problem(name)
    assert problem is None or problem.startswith("api_key_env")
