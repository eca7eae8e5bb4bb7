"""Validation, repair, retry and caching of LLM replies, with a scripted in-process backend (no HTTP)."""

from __future__ import annotations

import json

import pytest

from laser_story.llm.backends import ChatBackend, ChatReply, Sampling
from laser_story.llm.cache import CACHE_ENV, DiskCache, cache_key, resolve_cache_dir
from laser_story.llm.errors import LLMReplyError
from laser_story.llm.planner import LLMPlanner, PlanRequest, fit_text
from laser_story.llm.structured import CallStats, coerce, extract_json_object, structured_call
from laser_story.llm.tasks import morph

GOOD = {"prompts": ["a cat", "a tiger"], "controls": ["0"], "negative": "blurry", "frames_per_segment": 8}


class ScriptedBackend(ChatBackend):
    """Replies from a list, recording what it was asked."""

    name = "scripted"

    def __init__(self, replies: list[str], finish_reason: str = "stop") -> None:
        super().__init__("scripted-model", 2048)
        self.replies = list(replies)
        self.finish_reason = finish_reason
        self.asked: list[tuple[list[dict[str, str]], Sampling]] = []

    def chat(self, messages, schema, sampling):
        self.asked.append((messages, sampling))
        return ChatReply(self.replies.pop(0), self.finish_reason)


def morph_call(backend, **kwargs):
    return structured_call(
        backend,
        [{"role": "user", "content": "plan"}],
        morph.REPLY_SCHEMA,
        Sampling(0.2, 5, 128),
        lambda obj: morph.normalise_reply(obj),
        task="morph",
        **kwargs,
    )


@pytest.mark.parametrize(
    ("reply", "repair"),
    [
        (json.dumps(GOOD), None),
        ("```json\n" + json.dumps(GOOD) + "\n```", "stripped a code fence"),
        ("Sure! Here is the plan: " + json.dumps(GOOD) + " Enjoy.", "extracted the first JSON object"),
        (json.dumps(GOOD)[:-25], "closed a truncated JSON object"),
    ],
)
def test_extract_json_object_repairs(reply, repair):
    obj, notes = extract_json_object(reply)
    assert obj["prompts"] == ["a cat", "a tiger"]
    assert notes == [] if repair is None else any(repair in note for note in notes)


@pytest.mark.parametrize("reply", ["", "no json here", "[1, 2, 3]", "__import__('os').system('echo pwned')"])
def test_unusable_replies_are_rejected_never_evaluated(reply):
    with pytest.raises(ValueError):
        extract_json_object(reply)


def test_coerce_fixes_types_and_bounds():
    obj = {**GOOD, "controls": 0, "frames_per_segment": "500", "negative": 3, "extra": 1}
    fixed, notes = coerce(obj, morph.REPLY_SCHEMA)
    assert fixed == {**GOOD, "controls": ["0"], "frames_per_segment": 64, "negative": "3"}
    assert len(notes) >= 4


def test_retry_appends_the_problem_and_changes_the_seed():
    backend = ScriptedBackend(['{"prompts": ["only one"]}', json.dumps(GOOD)])
    stats = CallStats()
    plan = morph_call(backend, stats=stats)
    assert plan.prompts == ("a cat", "a tiger")
    assert stats.calls == 2 and stats.retries == 1
    (first, first_sampling), (second, second_sampling) = backend.asked
    assert "rejected" in second[-1]["content"] and "rejected" not in first[-1]["content"]
    assert (first_sampling.seed, second_sampling.seed) == (5, 6)


def test_reply_error_names_backend_model_and_excerpt():
    backend = ScriptedBackend(["I cannot do that {oops"] * 3, finish_reason="length")
    with pytest.raises(LLMReplyError) as info:
        morph_call(backend, max_attempts=3)
    message = str(info.value)
    assert "scripted backend" in message and "'scripted-model'" in message
    assert "3 attempt(s)" in message and "I cannot do that {oops" in message
    assert "cut off at max_tokens" in message
    assert len(backend.asked) == 3


def test_normaliser_repairs_count_as_repairs():
    stats = CallStats()
    plan = morph_call(ScriptedBackend([json.dumps({**GOOD, "controls": ["3", "1"]})]), stats=stats)
    assert plan.controls == ("2",)
    assert stats.repaired == 1 and stats.retries == 0


def test_cache_hit_makes_no_call_and_key_covers_seed(tmp_path):
    cache = DiskCache(tmp_path)
    first = ScriptedBackend([json.dumps(GOOD)])
    morph_call(first, cache=cache)
    stats = CallStats()
    again = ScriptedBackend([])
    assert morph_call(again, cache=cache, stats=stats).prompts == ("a cat", "a tiger")
    assert again.asked == [] and stats.cache_hits == 1
    other_seed = ScriptedBackend([json.dumps(GOOD)])
    structured_call(
        other_seed,
        [{"role": "user", "content": "plan"}],
        morph.REPLY_SCHEMA,
        Sampling(0.2, 6, 128),
        morph.normalise_reply,
        task="morph",
        cache=cache,
    )
    assert len(other_seed.asked) == 1


def test_cache_key_is_stable_and_order_independent():
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})


def test_cache_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert resolve_cache_dir(tmp_path / "default") == tmp_path / "elsewhere"
    monkeypatch.delenv(CACHE_ENV)
    assert resolve_cache_dir(tmp_path / "default") == tmp_path / "default"


def test_corrupt_cache_entry_is_a_miss(tmp_path):
    cache = DiskCache(tmp_path)
    cache.put("ab" * 32, {"reply": "x"})
    (tmp_path / "ab" / f"{'ab' * 32}.json").write_text("{broken")
    assert cache.get("ab" * 32) is None


def test_long_text_is_cut_with_a_warning_that_says_so(caplog):
    backend = ScriptedBackend([json.dumps(GOOD)])
    backend.context_tokens = 600
    text = "a cat turns into a tiger. " * 400
    result = LLMPlanner(backend).plan(PlanRequest("morph", text, sampling=Sampling(max_tokens=128)))
    assert result.warnings and "longer than the model's context" in result.warnings[0]
    assert "only the first" in caplog.text
    sent = backend.asked[0][0][-1]["content"]
    assert len(sent) < len(text) / 4


def test_fit_text_cuts_at_a_sentence_end():
    text, warning = fit_text("One two. Three four five six. Seven eight nine ten eleven.", 11)
    assert text == "One two. Three four five six." and warning
    assert fit_text("short", 100) == ("short", None)
