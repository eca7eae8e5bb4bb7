"""The tuned planner: the adapter as a model name, the short prompts it was trained on, and its training command.

What the model is trained on and what the planner sends must be the same text, token for token; the adapter
is served as base + LoRA by the pack's own llama.cpp server; the trainer's batches survive a restart.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from llama_cpp.llama_grammar import json_schema_to_gbnf
from llm_fixtures import GEMMA_FILE, gemma_path, llm_models_dir  # noqa: F401

from laser_story.llm.backends import ChatBackend, ChatReply, LlamaCppBackend, make_backend
from laser_story.llm.config import PACK_LLM_DIR, TUNED_ADAPTER, LLMConfig, list_model_files
from laser_story.llm.coref import StoryResolver
from laser_story.llm.errors import LLMConfigError
from laser_story.llm.evaluation import presence_counts
from laser_story.llm.llama_server import POOL
from laser_story.llm.planner import LLMPlanner, PlanRequest, make_plan
from laser_story.llm.structured import schema_problem
from laser_story.llm.tasks import story
from laser_story.llm.tasks.story import plan_story
from laser_story.training import planner_data, planner_lora

ADAPTER = Path(PACK_LLM_DIR) / TUNED_ADAPTER


class TunedScripted(ChatBackend):
    """A tuned backend that answers from a list and records the messages it got."""

    name = "scripted"

    def __init__(self, replies: list[str]) -> None:
        super().__init__("tuned-scripted", 4096)
        self.replies, self.asked, self.schemas = list(replies), [], []

    @property
    def tuned(self) -> bool:
        return True

    def chat(self, messages, schema, sampling):
        self.asked.append(messages)
        self.schemas.append(schema)
        return ChatReply(self.replies.pop(0), "stop")


def rules_reply(plan: story.StoryPlan) -> dict:
    """The rules' plan written as a story reply."""
    return {
        "characters": [{"name": c.name, "description": c.description} for c in plan.characters],
        "frames": [{"setting": f.setting, "references": [{"mention": r.mention, "refers_to": list(r.refers_to)}
                                                         for r in f.references]} for f in plan.frames],
    }  # fmt: skip


def test_the_planner_sends_a_tuned_model_exactly_what_it_was_trained_on():
    example = planner_data.story_example(0, 3)
    trained = planner_data.chat_examples(1, 0, 0, 0)[0]
    assert trained["messages"][0]["content"].startswith(story.TUNED_INSTRUCTION)
    first = planner_data.story_example(0, 0)
    backend = TunedScripted([json.dumps(rules_reply(plan_story(" ".join(first["sentences"]))))])
    plan = LLMPlanner(backend, cache=None).plan(PlanRequest("story", " ".join(first["sentences"]))).plan
    assert backend.asked == [trained["messages"][:1]]  # one user turn, no worked example
    assert [f.sentence for f in plan.frames] == first["sentences"]
    assert example["sentences"] != first["sentences"]


def test_a_tuned_model_resolves_the_mentions_the_rules_found_among_their_characters():
    text = "Mia met her friend Ana at the park. She gave her a kite. They flew it together."
    resolver = StoryResolver(text)
    rules = story.parse_story_plan(resolver.resolve())
    schema = story.guided_schema(rules, resolver.kinds())
    reply = rules_reply(rules)
    assert [r["refers_to"] for r in reply["frames"][1]["references"]] == [["Mia"], ["Ana"]]
    assert schema_problem(reply, schema) is None

    def changed(frame: int, ref: int, names: list[str]) -> dict:
        edited = json.loads(json.dumps(reply))
        edited["frames"][frame]["references"][ref]["refers_to"] = names
        return edited

    swapped = changed(1, 0, ["Ana"])  # the model's choice between the two women: allowed, and kept
    assert schema_problem(swapped, schema) is None
    assert "Anna" in schema_problem(changed(1, 0, ["Anna"]), schema)  # no one the rules did not find
    assert schema_problem(changed(1, 0, ["the kite"]), schema) is not None  # "She" is no kite
    assert schema_problem(changed(1, 0, ["Mia", "Ana"]), schema) is not None  # nor two people
    assert schema_problem(changed(2, 0, ["Mia", "Ana"]), schema) is None  # "They" may be
    dropped = json.loads(json.dumps(reply))
    dropped["frames"][1]["references"].pop()
    assert schema_problem(dropped, schema) is not None  # every mention the rules found, in order
    assert "frames-tuple-2" in json_schema_to_gbnf(json.dumps(schema))  # llama.cpp's grammar takes it

    backend = TunedScripted([json.dumps(swapped)])
    plan = LLMPlanner(backend, cache=None).plan(PlanRequest("story", text)).plan
    assert backend.schemas == [schema]
    assert plan.frames[1].text == "Ana gave Ana a kite."  # "She" as the model chose it, "her" as the rules did

    nobody = TunedScripted([json.dumps({"characters": [{"name": "the rain", "description": "rain"}],
                                        "frames": [{"setting": "", "references": []}]})])  # fmt: skip
    LLMPlanner(nobody, cache=None).plan(PlanRequest("story", "It rained all day."))
    assert nobody.schemas == [story.story_schema(1)]  # the rules found no one to choose from: the free reply


def test_expansion_calls_get_their_own_short_instructions():
    replies = [json.dumps({"global_caption": "a beach with a lighthouse"}), json.dumps({"caption": "a lighthouse"})]
    backend = TunedScripted(replies)
    request = PlanRequest("expand", "a beach with a lighthouse", image_caption="a sandy beach", directions=("right",))
    LLMPlanner(backend, cache=None).plan(request)
    firsts = [m[0]["content"].split("\n\n")[0] for m in backend.asked]
    assert firsts == [planner_data.TUNED_INSTRUCTIONS["expand_global"], planner_data.TUNED_INSTRUCTIONS["expand_local"]]
    assert all(len(m) == 1 for m in backend.asked)


def test_the_adapter_name_means_base_plus_lora_on_the_managed_server(tmp_path):
    write_gguf(tmp_path / GEMMA_FILE, "gemma3", adapter=False)
    write_gguf(tmp_path / TUNED_ADAPTER, "gemma3", adapter=True)
    backend = make_backend(LLMConfig(backend="llama_cpp", model=TUNED_ADAPTER), [str(tmp_path)])
    assert isinstance(backend, LlamaCppBackend) and backend.tuned
    assert backend.settings.model_path == tmp_path / GEMMA_FILE
    command = backend.settings.command(8000)
    assert command[command.index("--lora_path") + 1] == str(tmp_path / TUNED_ADAPTER)
    assert command[command.index("--chat_format") + 1] == "gemma"
    assert backend.model_id == TUNED_ADAPTER and "adapter_bytes" in backend.cache_identity()
    base = make_backend(LLMConfig(backend="llama_cpp", model=GEMMA_FILE), [str(tmp_path)])
    assert not base.tuned and "--lora_path" not in base.settings.command(8000)
    assert base.settings.key != backend.settings.key  # base and tuned servers can run side by side


def test_the_adapter_without_its_base_names_the_missing_file(tmp_path):
    write_gguf(tmp_path / TUNED_ADAPTER, "gemma3", adapter=True)
    with pytest.raises(LLMConfigError, match=GEMMA_FILE):
        make_backend(LLMConfig(backend="llama_cpp", model=TUNED_ADAPTER), [str(tmp_path)])
    with pytest.raises(LLMConfigError, match="llama_cpp"):
        make_backend(LLMConfig(backend="transformers", model=TUNED_ADAPTER), [str(tmp_path)])


def test_the_pack_folder_offers_the_shipped_adapter_once():
    assert ADAPTER.is_file(), f"{ADAPTER} is missing: python -m laser_story.training.planner_lora writes it"
    assert list_model_files([PACK_LLM_DIR, PACK_LLM_DIR]).count(TUNED_ADAPTER) == 1
    header = ADAPTER.read_bytes()[:4]
    assert header == b"GGUF"


def test_presence_counts_match_names_loosely_and_one_to_one():
    text = "Nora and her sister Ivy waited. She laughed."
    labelled = {"sentences": [{"text": "Nora and her sister Ivy waited.", "references": [], "present": ["Nora", "Ivy"]},
                              {"text": "She laughed.", "references": [], "present": ["Ivy"]}]}  # fmt: skip
    tp, fp, fn = presence_counts(plan_story(text), labelled)
    assert tp + fn == 3 and tp >= 2
    assert presence_counts(None, labelled) == (0, 0, 3)


def test_training_examples_tokenise_as_the_gemma_chat_format_prompts_them():
    class Words:
        """A stand-in tokenizer: one id per character, BOS = 2, so the layout can be checked exactly."""

        pad_token_id = 0

        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": ([2] if add_special_tokens else []) + [ord(c) for c in text]}

    example = planner_data.chat_examples(1, 0, 0, 0)[0]
    ids, start = planner_lora.encode_example(Words(), example)
    text = "".join(chr(i) for i in ids[1:])
    user, reply = (m["content"] for m in example["messages"])
    assert text == f"<start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n{reply}<end_of_turn>\n"
    assert "".join(chr(i) for i in ids[start:]) == reply + "<end_of_turn>\n"


def test_batches_are_the_same_after_a_restart_and_cover_every_example():
    order = planner_lora.batch_order(50, 4, 30, seed=1)
    assert order == planner_lora.batch_order(50, 4, 30, seed=1)
    assert order != planner_lora.batch_order(50, 4, 30, seed=2)
    lengths = [(i * 37) % 101 for i in range(50)]
    pooled = planner_lora.pool_by_length(order, lengths, pool=4)
    assert sorted(j for b in pooled for j in b) == sorted(j for b in order for j in b)
    assert all(len(b) == 4 for b in pooled)
    assert sorted(j for b in order[:12] for j in b) == sorted(set(j for b in order[:12] for j in b))  # one epoch: no repeats


@pytest.mark.llm
def test_the_shipped_adapter_plans_a_story_through_the_managed_server(gemma_path, caplog):  # noqa: F811
    config = LLMConfig(backend="llama_cpp", model=TUNED_ADAPTER, max_attempts=3, unload_after=True)
    text = "Mia met her brother Leo at the park. She gave him a kite. They flew it together."
    try:
        with caplog.at_level(logging.INFO, logger="laser_story.llm.backends"):
            result = make_plan(PlanRequest("story", text), config, cache_dir=None,
                               models_dirs=[str(llm_models_dir()), PACK_LLM_DIR])
    finally:
        POOL.stop_all()
    # 3 descriptions (Mia, Leo, the kite), 3 settings, 5 mentions: the guided reply written as a form
    assert "filled a 11-slot reply form" in caplog.text
    plan = result.plan
    assert result.source == f"llama_cpp:{TUNED_ADAPTER}"
    assert [f.sentence for f in plan.frames] == ["Mia met her brother Leo at the park.", "She gave him a kite.",
                                                 "They flew it together."]  # fmt: skip
    names = {c.name for c in plan.characters}
    assert {"Mia", "Leo"} <= names  # how well it resolves is benchmarks/planners.py's to measure, not a test's
    assert all(set(r.refers_to) <= names for f in plan.frames for r in f.references)


@pytest.mark.llm
def test_the_training_command_halts_resumes_and_writes_a_gguf_adapter_with_its_command(gemma_path, tmp_path):  # noqa: F811
    import gguf

    work, out = tmp_path / "work", tmp_path / "adapter.gguf"
    args = ["--preset", "smoke", "--threads", "1", "--base", str(gemma_path), "--work", str(work), "--out", str(out)]
    assert planner_lora.main([*args, "--set", "halt_at=2"]) == 0 and not out.exists()
    first = torch_load(work / "train_ckpt.pt")
    assert first["step"] == 2
    assert planner_lora.main(args) == 0
    reader = gguf.GGUFReader(out)
    fields = {name: field.contents() for name, field in reader.fields.items()}
    assert fields["general.type"] == "adapter" and fields["adapter.type"] == "lora"
    meta = json.loads(fields["general.description"])
    assert meta["command"].startswith("python -m laser_story.training.planner_lora --preset smoke")
    assert meta["losses"]["train"]["step"] == 3
    assert any(t.name.endswith("attn_q.weight.lora_a") for t in reader.tensors)


def torch_load(path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


def test_a_missing_adapter_falls_back_to_the_rules_with_how_to_build_it(tmp_path):
    (tmp_path / GEMMA_FILE).write_bytes(b"GGUF base")
    config = LLMConfig(backend="llama_cpp", model=TUNED_ADAPTER)
    result = make_plan(PlanRequest("story", "Mia met Leo. She waved at him."), config, cache_dir=None,
                       models_dirs=[str(tmp_path)])  # fmt: skip
    assert result.source == "rules"
    assert "planner_lora" in result.warnings[0] and TUNED_ADAPTER in result.warnings[0]
    assert {r.mention: r.refers_to for r in result.plan.frames[1].references}["She"] == ("Mia",)


def write_gguf(path: Path, arch: str, adapter: bool) -> None:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    if adapter:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_array("tokenizer.ggml.tokens", ["a", "b", "c"])  # an array before the keys read last is skipped
    writer.add_uint32(f"{arch}.embedding_length", 64)
    writer.add_tensor("blk.0.attn_q.weight.lora_a", np.zeros((4, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_an_adapter_for_another_base_is_refused_naming_both(tmp_path):
    from laser_story.llm.gguf_header import header_values

    write_gguf(tmp_path / TUNED_ADAPTER, "llama", adapter=True)
    write_gguf(tmp_path / GEMMA_FILE, "gemma3", adapter=False)
    assert header_values(tmp_path / GEMMA_FILE, ("gemma3.embedding_length", "general.architecture")) == {
        "gemma3.embedding_length": 64, "general.architecture": "gemma3"}
    config = LLMConfig(backend="llama_cpp", model=TUNED_ADAPTER)
    with pytest.raises(LLMConfigError, match=f"adapter {TUNED_ADAPTER} was made for a llama model.*base model {GEMMA_FILE}"):
        make_backend(config, [str(tmp_path)])
    write_gguf(tmp_path / TUNED_ADAPTER, "gemma3", adapter=False)
    with pytest.raises(LLMConfigError, match="is not a LoRA adapter"):
        make_backend(config, [str(tmp_path)])
    write_gguf(tmp_path / TUNED_ADAPTER, "gemma3", adapter=True)
    assert make_backend(config, [str(tmp_path)]).tuned
