"""The LLM Config and LLM Prompt Planner nodes inside a real in-process ComfyUI."""

from __future__ import annotations

import json

import pytest
from llm_fixtures import GEMMA_FILE, gemma_path  # noqa: F401

pytestmark = pytest.mark.host

STORY = "Mia met Tom at the beach. She gave him a shell. They sat on the sand."


def planner(task: str = "story", text: str = STORY, **extra) -> dict:
    return {"class_type": "LaserStoryLLMPlanner",
            "inputs": {"task": task, "text": text, "temperature": 0.0, "seed": 0, "max_tokens": 256, **extra}}  # fmt: skip


def config(backend: str = "rules", **extra) -> dict:
    inputs = {"backend": backend, "model": GEMMA_FILE, "base_url": "", "api_key_env": "", "timeout_s": 120.0,
              "max_attempts": 3, "unload_after": False, "n_ctx": 2048, **extra}  # fmt: skip
    return {"class_type": "LaserStoryLLMConfig", "inputs": inputs}


def shown_plan(outputs: dict, node: str) -> dict:
    return json.loads(outputs[node]["text"][-1])


def node_class(comfy_host, name: str):
    return comfy_host.nodes.NODE_CLASS_MAPPINGS[name]


def test_nodes_follow_the_conventions(comfy_host):
    for name, display in (("LaserStoryLLMPlanner", "LLM Prompt Planner"), ("LaserStoryLLMConfig", "LLM Config")):
        cls = node_class(comfy_host, name)
        assert comfy_host.nodes.NODE_DISPLAY_NAME_MAPPINGS[name] == display
        assert cls.CATEGORY == "laser-story/llm" and cls.DESCRIPTION
        spec = cls.INPUT_TYPES()
        for group in spec.values():
            for input_name, (_, options) in group.items():
                assert options.get("tooltip"), f"{name}.{input_name} has no tooltip"
                assert "key" not in input_name or input_name == "api_key_env"
    assert node_class(comfy_host, "LaserStoryLLMPlanner").RETURN_TYPES == (
        "LASER_STORY_MORPH_PLAN", "STRING", "LASER_STORY_EXPAND_PLAN", "LASER_STORY_STORY_PLAN")


def test_rule_based_story_plan_runs_and_is_shown(comfy_host):
    outputs = comfy_host.run({"1": planner()})
    plan = shown_plan(outputs, "1")
    assert plan["task"] == "story" and [c["name"] for c in plan["characters"]] == ["Mia", "Tom"]
    assert plan["frames"][1]["text"] == "Mia gave Tom a shell."


def test_one_config_feeds_several_planners(comfy_host):
    graph = {
        "1": config("rules"),
        "2": planner("morph", "a cat turns into a tiger, then jumps", llm_config=["1", 0]),
        "3": planner("expand", "a beach with children and a dog", llm_config=["1", 0], directions="right x2"),
    }
    outputs = comfy_host.run(graph)
    morph, expand = shown_plan(outputs, "2"), shown_plan(outputs, "3")
    assert morph["task"] == "morph" and morph["controls"] == ["0", "1"]
    assert [s["direction"] for s in expand["steps"]] == ["right", "right"]


def test_plan_override_is_validated_and_used_instead_of_any_llm(comfy_host):
    override = {
        "task": "morph",
        "prompts": ["a fox", "a wolf"],
        "controls": ["0"],
        "negative": "",
        "frames_per_segment": 4,
    }
    graph = {"1": config("openai", model="no-such-model", base_url="http://127.0.0.1:9"),
             "2": planner("morph", "", llm_config=["1", 0], plan_override=json.dumps(override))}  # fmt: skip
    outputs = comfy_host.run(graph)
    assert shown_plan(outputs, "2") == override


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"text": "  "}, "text is empty"),
        ({"plan_override": "{oops"}, "plan_override is not valid JSON"),
        (
            {"task": "morph", "plan_override": json.dumps({"prompts": ["a"], "controls": []})},
            "field 'prompts' needs at least 2",
        ),
        (
            {"task": "expand", "text": "a city", "directions": "left, diagonal"},
            "directions: 'diagonal' is not a direction",
        ),
    ],
)
def test_planner_validation_errors_name_the_input(comfy_host, inputs, expected):
    ok, _, _, node_errors = comfy_host.validate({"1": planner(**inputs)})
    assert not ok
    assert expected in json.dumps(node_errors)


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"backend": "gpt5"}, "backend: unknown backend 'gpt5'"),
        ({"backend": "openai", "api_key_env": "sk-live-abc/def"}, "NAME of an environment variable"),
        ({"backend": "llama_cpp", "model": "missing.gguf"}, "model: .gguf model 'missing.gguf' was not found"),
        ({"backend": "openai", "model": ""}, "model: give the model name"),
    ],
)
def test_config_validation_errors_name_the_input(comfy_host, inputs, expected):
    graph = {"1": config(**inputs), "2": planner(llm_config=["1", 0])}
    ok, _, _, node_errors = comfy_host.validate(graph)
    assert not ok
    text = json.dumps(node_errors)
    assert expected in text
    assert "sk-live-abc" not in text


def test_missing_gguf_error_lists_models_llm(comfy_host, gemma_path):  # noqa: F811
    graph = {"1": config("llama_cpp", model="missing.gguf"), "2": planner(llm_config=["1", 0])}
    _, _, _, node_errors = comfy_host.validate(graph)
    assert GEMMA_FILE in json.dumps(node_errors)


@pytest.mark.llm
def test_gemma_through_the_node_is_cached_on_disk(comfy_host, gemma_path):  # noqa: F811
    """Re-running the node with the same inputs is answered from <user dir>/laser-story/llm-cache: no server starts."""
    from laser_story.llm.llama_server import POOL  # the very pool the node uses: one module identity

    pool = POOL
    graph = {"1": config("llama_cpp", unload_after=True), "2": planner("morph", "a red car becomes a blue car")}
    graph["2"]["inputs"]["llm_config"] = ["1", 0]
    try:
        first = shown_plan(comfy_host.run(graph), "2")
        assert pool.running() == []
        cache = comfy_host.base / "user" / "laser-story" / "llm-cache"
        assert any(cache.rglob("*.json"))
        (llm_config,) = node_class(comfy_host, "LaserStoryLLMConfig")().configure(**graph["1"]["inputs"])
        inputs = {**graph["2"]["inputs"], "llm_config": llm_config}
        again = node_class(comfy_host, "LaserStoryLLMPlanner")().plan(**inputs)
        assert json.loads(again["ui"]["text"][-1]) == first == again["result"][0]
        assert pool.running() == []
    finally:
        pool.stop_all()
