"""Against a real model: Gemma 3 270M (base, Q4_K_M) in a llama.cpp server on 127.0.0.1.

A 270M base model's plan quality is not under test; what is: every reply becomes a schema-valid plan (via
the grammar, local repair or a retry), through each of the three protocols the pack speaks to it (OpenAI
chat API, Ollama's native API through a small front over the same model, and the pack's own managed
server), and the cache and unload paths start or call nothing they should not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llm_fixtures import GEMMA_FILE, gemma_path, llama_server, llm_models_dir, ollama_front  # noqa: F401

from laser_story.llm.backends import OllamaBackend, OpenAIBackend, Sampling
from laser_story.llm.config import LLMConfig
from laser_story.llm.language import split_sentences
from laser_story.llm.llama_server import POOL
from laser_story.llm.planner import LLMPlanner, PlanRequest, make_plan
from laser_story.llm.structured import CallStats
from laser_story.llm.tasks import parse_plan

pytestmark = pytest.mark.llm

INPUTS = json.loads((Path(__file__).parent / "data" / "llm_inputs.json").read_text())
MAX_TOKENS = {"morph": 200, "expand": 80, "story": 320}


def request_for(task: str, item: dict, seed: int = 0) -> PlanRequest:
    return PlanRequest(
        task,
        item["text"],
        image_caption=item.get("image_caption", ""),
        directions=tuple(item.get("directions", ())),
        sampling=Sampling(temperature=0.2, seed=seed, max_tokens=MAX_TOKENS[task]),
    )


@pytest.mark.parametrize("task", ["morph", "expand", "story"])
def test_ten_varied_inputs_give_schema_valid_plans(task, llama_server):  # noqa: F811
    backend = OpenAIBackend(llama_server.alias, llama_server.base_url, retries=1, context_tokens=2048)
    planner = LLMPlanner(backend, cache=None, max_attempts=3)
    total = CallStats()
    assert len(INPUTS[task]) >= 10
    for item in INPUTS[task]:
        result = planner.plan(request_for(task, item))
        data = result.plan.to_json()
        assert parse_plan(json.loads(json.dumps(data)), task=task) == result.plan
        if task == "morph" and item.get("image_caption"):
            assert data["prompts"][0] == item["image_caption"]
        if task == "expand":
            assert [s["direction"] for s in data["steps"]] == item["directions"]
        if task == "story":
            assert [f["sentence"] for f in data["frames"]] == split_sentences(item["text"])
        for field in ("calls", "repaired", "retries"):
            setattr(total, field, getattr(total, field) + getattr(result.stats, field))
    assert total.calls >= 10


def test_ollama_native_api_through_a_front_over_the_same_model(ollama_front):  # noqa: F811
    backend = OllamaBackend("gemma-3-270m", ollama_front.url, context_tokens=2048)
    planner = LLMPlanner(backend, max_attempts=3)
    for task in ("morph", "story"):
        plan = planner.plan(request_for(task, INPUTS[task][0], seed=3)).plan
        assert parse_plan(plan.to_json(), task=task) == plan
    chats = [r for r in ollama_front.requests if r.path == "/api/chat"]
    assert chats and all(isinstance(r.body["format"], dict) and r.body["options"]["seed"] >= 3 for r in chats)
    config = LLMConfig(backend="ollama", model="gemma-3-270m", base_url=ollama_front.url, unload_after=True)
    make_plan(request_for("morph", INPUTS["morph"][1]), config)
    assert ollama_front.requests[-1].path == "/api/generate"
    assert ollama_front.requests[-1].body["keep_alive"] == 0


def test_managed_server_from_models_llm_is_reused_then_stopped(gemma_path, tmp_path):  # noqa: F811
    """The pack finds the GGUF in models/LLM and serves it itself on 127.0.0.1; no network is involved."""
    config = LLMConfig(backend="llama_cpp", model=GEMMA_FILE, max_attempts=3)
    models = [str(llm_models_dir())]
    try:
        make_plan(request_for("morph", INPUTS["morph"][0]), config, models_dirs=models)
        (server,) = POOL.running()
        assert server.settings.model_path == gemma_path and server.base_url.startswith("http://127.0.0.1:")
        make_plan(request_for("morph", INPUTS["morph"][2]), config, models_dirs=models)
        assert [s.process.pid for s in POOL.running()] == [server.process.pid]
        unload = LLMConfig(backend="llama_cpp", model=GEMMA_FILE, unload_after=True)
        make_plan(request_for("morph", INPUTS["morph"][3]), unload, models_dirs=models)
        assert POOL.running() == [] and server.process.poll() is not None
    finally:
        POOL.stop_all()


def test_cache_hit_neither_starts_the_server_nor_calls_it(tmp_path):
    config = LLMConfig(backend="llama_cpp", model=GEMMA_FILE, unload_after=True, max_attempts=3)
    models = [str(llm_models_dir())]
    try:
        first = make_plan(request_for("story", INPUTS["story"][0]), config, cache_dir=tmp_path, models_dirs=models)
        assert first.stats.calls >= 1 and POOL.running() == []
        again = make_plan(request_for("story", INPUTS["story"][0]), config, cache_dir=tmp_path, models_dirs=models)
        assert again.plan == first.plan
        assert again.stats.calls == 0 and again.stats.cache_hits == 1
        assert POOL.running() == []
    finally:
        POOL.stop_all()
