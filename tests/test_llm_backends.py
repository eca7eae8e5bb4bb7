"""HTTP backends against tiny local fake servers: payloads, keys, errors, retries and the disk cache.

The fake servers answer on 127.0.0.1 only; the real model is exercised in test_llm_gemma.py.
"""

from __future__ import annotations

import json
import logging
import sys
import types

import pytest
from llm_fixtures import fake_server  # noqa: F401

from laser_story.llm import backends as backends_module
from laser_story.llm.backends import OpenAIBackend, Sampling, TransformersBackend, make_backend
from laser_story.llm.config import LLMConfig, resolve_model_path
from laser_story.llm.errors import LLMConfigError, LLMHTTPError, LLMReplyError, LLMTimeoutError, LLMUnreachableError
from laser_story.llm.llama_server import free_port
from laser_story.llm.planner import LLMPlanner, PlanRequest, make_plan
from laser_story.llm.tasks import morph

GOOD_MORPH = {"prompts": ["a cat", "a tiger"], "controls": ["0"], "negative": "blurry", "frames_per_segment": 8}
SECRET = "sk-test-0123456789abcdef"


def openai_reply(content: str, finish_reason: str = "stop") -> dict:
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}]
    }


def always(content: str):
    return lambda request: (200, openai_reply(content))


def morph_request(seed: int = 1) -> PlanRequest:
    return PlanRequest("morph", "a cat turns into a tiger", sampling=Sampling(0.2, seed, 128))


def test_openai_payload_carries_schema_seed_and_key(fake_server, monkeypatch):  # noqa: F811
    monkeypatch.setenv("LASER_STORY_TEST_KEY", SECRET)
    server = fake_server(always(json.dumps(GOOD_MORPH)))
    backend = OpenAIBackend("gpt-test", server.url, api_key_env="LASER_STORY_TEST_KEY")
    plan = LLMPlanner(backend).plan(morph_request(seed=42)).plan
    assert plan.prompts == ("a cat", "a tiger")
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    body = request.body
    assert body["model"] == "gpt-test" and body["seed"] == 42 and body["max_tokens"] == 128
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == morph.REPLY_SCHEMA


def test_missing_api_key_variable_is_named_and_nothing_is_sent(fake_server, monkeypatch):  # noqa: F811
    monkeypatch.delenv("LASER_STORY_TEST_MISSING_KEY", raising=False)
    server = fake_server(always(json.dumps(GOOD_MORPH)))
    backend = OpenAIBackend("gpt-test", server.url, api_key_env="LASER_STORY_TEST_MISSING_KEY")
    with pytest.raises(LLMConfigError, match="LASER_STORY_TEST_MISSING_KEY named in api_key_env is not set"):
        LLMPlanner(backend).plan(morph_request())
    assert server.requests == []


def test_key_never_reaches_errors_logs_or_config(fake_server, monkeypatch, caplog):  # noqa: F811
    monkeypatch.setenv("LASER_STORY_TEST_KEY", SECRET)
    server = fake_server(lambda request: (401, {"error": f"bad key {request.headers.get('Authorization')}"}))
    config = LLMConfig(backend="openai", model="gpt-test", base_url=server.url, api_key_env="LASER_STORY_TEST_KEY")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(LLMHTTPError) as info:
        make_plan(morph_request(), config)
    assert "401" in str(info.value) and "[redacted]" in str(info.value)
    assert SECRET not in str(info.value) and SECRET not in caplog.text
    assert SECRET not in json.dumps(config.to_json())


def test_a_key_pasted_as_variable_name_is_refused_without_echoing_it():
    with pytest.raises(LLMConfigError, match="NAME of an environment variable") as info:
        LLMConfig(backend="openai", model="m", api_key_env=SECRET + "/x")
    assert SECRET not in str(info.value)


def test_unreachable_endpoint(monkeypatch):
    port = free_port()
    backend = OpenAIBackend("gpt-test", f"http://127.0.0.1:{port}", retries=1)
    with pytest.raises(
        LLMUnreachableError, match=rf"cannot reach openai backend at http://127.0.0.1:{port}/v1.*after 2 tries"
    ):
        LLMPlanner(backend).plan(morph_request())


def test_timeout(fake_server):  # noqa: F811
    server = fake_server(always(json.dumps(GOOD_MORPH)), delay=5)
    backend = OpenAIBackend("gpt-test", server.url, timeout=0.5, retries=0)
    with pytest.raises(LLMTimeoutError, match="did not answer within 0.5 s"):
        LLMPlanner(backend).plan(morph_request())


def test_server_errors_are_retried_with_backoff(fake_server):  # noqa: F811
    answers = [(503, {"error": "loading"}), (200, openai_reply(json.dumps(GOOD_MORPH)))]
    server = fake_server(lambda request: answers.pop(0))
    LLMPlanner(OpenAIBackend("gpt-test", server.url, retries=2)).plan(morph_request())
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("Sorry, I cannot plan that.", "the reply contains no JSON object"),
        ('Here you go: {"prompts": ["a cat", ', "'controls' is a required property"),
        (json.dumps({**GOOD_MORPH, "prompts": ["only one"]}), "field prompts: ['only one'] is too short"),
    ],
)
def test_schema_violating_replies_fail_after_retries(fake_server, content, problem):  # noqa: F811
    server = fake_server(always(content))
    backend = OpenAIBackend("bad-model", server.url)
    with pytest.raises(LLMReplyError) as info:
        LLMPlanner(backend, max_attempts=2).plan(morph_request())
    message = str(info.value)
    assert "openai backend, model 'bad-model'" in message and "2 attempt(s)" in message
    assert problem in message and "reply excerpt:" in message and content[:15] in message
    assert len(server.requests) == 2
    assert "rejected" in server.requests[1].body["messages"][-1]["content"]


def test_cache_hit_makes_no_http_call(fake_server, tmp_path):  # noqa: F811
    server = fake_server(always(json.dumps(GOOD_MORPH)))
    config = LLMConfig(backend="openai", model="gpt-test", base_url=server.url)
    first = make_plan(morph_request(), config, cache_dir=tmp_path)
    again = make_plan(morph_request(), config, cache_dir=tmp_path)
    assert again.plan == first.plan
    assert len(server.requests) == 1
    assert again.stats.cache_hits == 1 and again.stats.calls == 0
    make_plan(morph_request(seed=2), config, cache_dir=tmp_path)
    assert len(server.requests) == 2


def test_ollama_native_payload_and_unload(fake_server):  # noqa: F811
    def respond(request):
        if request.path == "/api/chat":
            return 200, {"message": {"role": "assistant", "content": json.dumps(GOOD_MORPH)}, "done": True}
        return 200, {"done": True, "done_reason": "unload"}

    server = fake_server(respond)
    config = LLMConfig(backend="ollama", model="llama3.2", base_url=server.url, unload_after=True)
    make_plan(morph_request(seed=9), config)
    chat, unload = server.requests
    assert chat.path == "/api/chat" and chat.body["stream"] is False
    assert chat.body["format"] == morph.REPLY_SCHEMA
    assert chat.body["options"]["seed"] == 9 and chat.body["options"]["num_predict"] == 128
    assert unload.path == "/api/generate" and unload.body == {"model": "llama3.2", "keep_alive": 0}


def test_unknown_backend_name():
    with pytest.raises(LLMConfigError, match="unknown LLM backend 'gpt5'; choose one of: rules, llama_cpp"):
        LLMConfig(backend="gpt5")
    with pytest.raises(LLMConfigError, match="unknown keys"):
        LLMConfig.from_json({"backend": "rules", "api_key": SECRET})


def test_missing_gguf_lists_what_models_llm_holds(tmp_path):
    (tmp_path / "a-model.gguf").write_bytes(b"GGUF")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b-model.gguf").write_bytes(b"GGUF")
    with pytest.raises(LLMConfigError) as info:
        make_backend(LLMConfig(backend="llama_cpp", model="missing.gguf"), [str(tmp_path)])
    message = str(info.value)
    assert "'missing.gguf' was not found in" in message and str(tmp_path) in message
    assert "a-model.gguf" in message and "sub/b-model.gguf" in message
    assert resolve_model_path("sub/b-model.gguf", [str(tmp_path)], suffix=".gguf") == tmp_path / "sub" / "b-model.gguf"


def test_transformers_backend_says_how_to_install(monkeypatch, tmp_path):
    (tmp_path / "tiny").mkdir()
    monkeypatch.setattr(backends_module.importlib.util, "find_spec", lambda name: None)
    backend = TransformersBackend(tmp_path / "tiny")
    with pytest.raises(LLMConfigError, match="pip install transformers torch"):
        backend.chat([{"role": "user", "content": "x"}], morph.REPLY_SCHEMA, Sampling())


def test_transformers_backend_runs_a_local_model(monkeypatch, tmp_path):
    """A stand-in ``transformers`` module: checks the lazy import, chat template, seeding and decoding."""
    torch = pytest.importorskip("torch")
    calls = {}

    class Tokenizer:
        chat_template = "{{ messages }}"
        pad_token_id, eos_token_id = 0, 0

        @classmethod
        def from_pretrained(cls, where, **kwargs):
            calls["tokenizer"] = (where, kwargs)
            return cls()

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            calls["messages"] = messages
            return "PROMPT"

        def __call__(self, prompt, return_tensors):
            return types.SimpleNamespace(to=lambda device: {"input_ids": torch.zeros((1, 3), dtype=torch.long)})

        def decode(self, tokens, skip_special_tokens):
            return json.dumps(GOOD_MORPH)

    class Model:
        device = "cpu"

        @classmethod
        def from_pretrained(cls, where, **kwargs):
            return cls()

        def to(self, device):
            return self

        def eval(self):
            return self

        def generate(self, **kwargs):
            calls["generate"] = kwargs
            return torch.zeros((1, 8), dtype=torch.long)

    fake = types.ModuleType("transformers")
    fake.AutoTokenizer, fake.AutoModelForCausalLM = Tokenizer, Model
    monkeypatch.setitem(sys.modules, "transformers", fake)
    monkeypatch.setattr(backends_module.importlib.util, "find_spec", lambda name: object())
    (tmp_path / "tiny-model").mkdir()
    backend = make_backend(LLMConfig(backend="transformers", model="tiny-model"), [str(tmp_path)])
    try:
        plan = LLMPlanner(backend).plan(morph_request()).plan
    finally:
        backend.unload()
    assert plan.prompts == ("a cat", "a tiger")
    assert calls["tokenizer"] == (tmp_path / "tiny-model", {"local_files_only": True})
    assert "JSON Schema" in calls["messages"][-1]["content"]
    assert calls["generate"]["max_new_tokens"] == 128 and calls["generate"]["do_sample"] is True


def test_openai_backend_falls_back_to_the_json_object_form(fake_server):  # noqa: F811
    """llama-cpp-python's server (and some others) refuse OpenAI's json_schema form but take json_object + schema."""

    def respond(request):
        if request.body["response_format"]["type"] == "json_schema":
            return 422, {"error": "response_format.type: Input should be 'text' or 'json_object'"}
        return 200, openai_reply(json.dumps(GOOD_MORPH))

    server = fake_server(respond)
    backend = OpenAIBackend("local", server.url, retries=0)
    LLMPlanner(backend).plan(morph_request())
    LLMPlanner(backend).plan(morph_request(seed=2))
    formats = [r.body["response_format"]["type"] for r in server.requests]
    assert formats == ["json_schema", "json_object", "json_object"]
    assert server.requests[-1].body["response_format"]["schema"] == morph.REPLY_SCHEMA
