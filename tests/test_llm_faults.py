"""Faults in the LLM path: a local server killed mid-call, a server that answers garbage, a corrupt cache
file, two planners at once on one local model. Real llama.cpp servers, real HTTP, real files."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from llm_fixtures import GEMMA_FILE, fake_server, gemma_path, llm_models_dir  # noqa: F401

from laser_story.llm.backends import OpenAIBackend, Sampling
from laser_story.llm.config import LLMConfig
from laser_story.llm.errors import LLMError, LLMHTTPError
from laser_story.llm.llama_server import POOL
from laser_story.llm.planner import LLMPlanner, PlanRequest, make_plan

LONG_STORY = " ".join(f"Mia met Tom by the river on day {i}. She gave him a shell and they walked home." for i in range(12))


def local(**extra) -> LLMConfig:
    return LLMConfig(**{"backend": "llama_cpp", "model": GEMMA_FILE, "max_attempts": 1, **extra})


def story_request(seed: int = 0, max_tokens: int = 1024) -> PlanRequest:
    return PlanRequest("story", LONG_STORY, sampling=Sampling(0.0, seed, max_tokens))


@pytest.mark.llm
def test_local_server_crashing_mid_call_fails_naming_the_backend_and_the_signal_and_the_next_plan_works(gemma_path):  # noqa: F811
    models = [str(llm_models_dir())]
    outcome: dict[str, object] = {}

    def plan() -> None:
        try:
            outcome["plan"] = make_plan(story_request(), local(), models_dirs=models)
        except Exception as exc:  # noqa: BLE001 - the test inspects whatever came out
            outcome["error"] = exc

    try:
        worker = threading.Thread(target=plan)
        worker.start()
        deadline = time.monotonic() + 120
        while not POOL.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        (server,) = POOL.running()
        time.sleep(1.5)  # the long story's reply takes many seconds: the request is in flight
        assert worker.is_alive(), "the reply came back before the server could be killed"
        os.kill(server.process.pid, signal.SIGSEGV)  # what a native-library crash looks like
        worker.join(timeout=120)
        error = outcome.get("error")
        assert isinstance(error, LLMError), outcome
        assert "llama_cpp backend" in str(error) and GEMMA_FILE in str(error)
        assert "died while answering (signal SIGSEGV)" in str(error) and "GGML_NATIVE=OFF" in str(error)
        again = make_plan(PlanRequest("morph", "a cat turns into a tiger", sampling=Sampling(0.0, 1, 128)), local(),
                          models_dirs=models)
        assert again.plan.prompts
        (restarted,) = POOL.running()
        assert restarted.process.pid != server.process.pid
    finally:
        POOL.stop_all()


@pytest.mark.llm
def test_two_planners_at_once_share_one_local_server_and_get_their_own_replies(gemma_path):  # noqa: F811
    models = [str(llm_models_dir())]
    captions = ["a red star", "a blue circle", "a green square", "a yellow heart"]
    results: dict[str, object] = {}

    def plan(caption: str) -> None:
        request = PlanRequest("morph", "it jumps, then it spins", image_caption=caption, sampling=Sampling(0.2, 7, 160))
        try:
            results[caption] = make_plan(request, local(max_attempts=3, unload_after=True), models_dirs=models).plan
        except Exception as exc:  # noqa: BLE001
            results[caption] = exc

    pids: set[int] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.02):
            pids.update(s.process.pid for s in POOL.running())

    try:
        watcher = threading.Thread(target=watch)
        watcher.start()
        threads = [threading.Thread(target=plan, args=(c,)) for c in captions]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        done.set()
        watcher.join()
        assert len(pids) == 1, "one GGUF, one server, however many planners ask at once"
        assert POOL.running() == [], "unload_after stopped it once the last planner was done"
        for caption in captions:
            plan_ = results[caption]
            assert not isinstance(plan_, Exception), plan_
            assert plan_.prompts[0] == caption, "each planner got the reply to its own request"
    finally:
        POOL.stop_all()


def test_garbage_bodies_are_retried_then_reported_with_an_excerpt(fake_server):  # noqa: F811
    server = fake_server(lambda request: (200, "<html><body>502 Bad Gateway from the proxy</body></html>"))
    backend = OpenAIBackend("gpt-test", server.url, retries=2)
    with pytest.raises(LLMHTTPError) as info:
        LLMPlanner(backend).plan(PlanRequest("morph", "a cat turns into a tiger"))
    assert "openai backend" in str(info.value) and "Bad Gateway" in str(info.value)
    assert len(server.requests) >= 1


def test_a_truncated_cache_file_is_recomputed_and_replaced(fake_server, tmp_path):  # noqa: F811
    reply = {"prompts": ["a cat", "a tiger"], "controls": ["0"], "negative": "", "frames_per_segment": 8}
    server = fake_server(lambda request: (200, {"choices": [{"message": {"content": json.dumps(reply)}, "finish_reason": "stop"}]}))
    config = LLMConfig(backend="openai", model="gpt-test", base_url=server.url)
    request = PlanRequest("morph", "a cat turns into a tiger")
    first = make_plan(request, config, cache_dir=tmp_path)
    (entry,) = tmp_path.rglob("*.json")
    for damage in (entry.read_bytes()[:7], b"\x00\xff garbage", b""):
        entry.write_bytes(damage)
        again = make_plan(request, config, cache_dir=tmp_path)
        assert again.plan == first.plan and again.stats.calls == 1
        assert json.loads(entry.read_text())["reply"], "the damaged entry was replaced by a good one"
    assert len(server.requests) == 4
