"""Fixed-shape replies filled as forms: the layout the tuned model was trained on, slot by slot.

The form of the tuned story schema must write, given the rules' answers, exactly the compact JSON the
adapter's training replies are; every reply it writes must fit the schema; a choice off the options is
written again under a grammar of the options, which llama.cpp parses and the real server honours.
"""

from __future__ import annotations

import json
import logging

import pytest
from llama_cpp import LlamaGrammar
from llm_fixtures import GEMMA_FILE, gemma_path, llm_models_dir  # noqa: F401
from test_planner_tuned import rules_reply

from laser_story.llm.backends import Sampling, make_backend
from laser_story.llm.config import LLMConfig
from laser_story.llm.form import Pick, Text, fill, form_of, gemma_prompt
from laser_story.llm.language import split_sentences
from laser_story.llm.llama_server import POOL
from laser_story.llm.structured import schema_problem
from laser_story.llm.tasks import expand, morph, story

TEXT = ("Mia met her brother Leo at the park. She gave him a kite. They flew it together. "
        "A dog ran after it, and he laughed.")  # fmt: skip


def guided() -> tuple[dict, dict]:
    rules = story.plan_story(TEXT)
    return story.guided_story_schema(TEXT, split_sentences(TEXT)), rules_reply(rules)


def slot_answers(reply: dict) -> list[str]:
    """The reply's open values in the order a form asks for them, as a model would write them."""
    out = [json.dumps(c["description"])[1:-1] for c in reply["characters"]]
    for frame in reply["frames"]:
        out.append(json.dumps(frame["setting"])[1:-1])
        out += ['","'.join(r["refers_to"]) for r in frame["references"]]
    return out


class Scripted:
    """A ``complete`` that answers each slot from a list and records what it was asked."""

    def __init__(self, answers: list[str], constrained: list[str] | None = None) -> None:
        self.answers, self.constrained, self.asked = list(answers), list(constrained or []), []

    def __call__(self, prompt: str, stop: str, max_tokens: int, grammar: str | None) -> str:
        self.asked.append((prompt, stop, grammar))
        return (self.constrained if grammar else self.answers).pop(0)


def test_the_story_form_writes_the_training_layout_and_asks_only_for_the_open_values():
    schema, reply = guided()
    form = form_of(schema)
    slots = [p for p in form if not isinstance(p, str)]
    texts, picks = [p for p in slots if isinstance(p, Text)], [p for p in slots if isinstance(p, Pick)]
    assert len(texts) == len(reply["characters"]) + len(reply["frames"])  # a description each, a setting each
    assert len(picks) == sum(len(f["references"]) for f in reply["frames"]) and len(slots) == len(texts) + len(picks)
    complete = Scripted(slot_answers(reply))
    filled = fill(form, "PROMPT", complete)
    assert filled.text == json.dumps(reply, separators=(",", ":"))  # what the adapter was trained to write
    assert filled.completions == len(slots) and filled.constrained == 0
    # each slot continues the prompt and the reply so far; a description stops at its quote, a choice at "]
    prompt, stop, grammar = complete.asked[0]
    assert prompt == 'PROMPT{"characters":[{"name":"Mia","description":"' and stop == '"' and grammar is None
    assert complete.asked[len(reply["characters"]) + 1][0].endswith('"refers_to":["') and complete.asked[-1][1] == '"]'


def test_whatever_the_model_writes_the_filled_form_fits_the_schema():
    schema, reply = guided()
    form = form_of(schema)
    texts = iter(['a "kite" flier\nwith a \\ cap', "x" * 300, ""])
    answers = [next(texts, "the park") if isinstance(p, Text) else "Nobody" for p in form if not isinstance(p, str)]
    picks = [p for p in form if isinstance(p, Pick)]
    complete = Scripted(answers, ['","'.join(p.options[: p.most]) for p in picks])
    filled = fill(form, "", complete)
    value = json.loads(filled.text)
    assert schema_problem(value, schema) is None
    assert value["characters"][0]["description"] == 'a "kite" flier\nwith a \\ cap'  # escaped, not lost
    assert len(value["characters"][1]["description"]) == 100  # cut to the schema's maxLength
    assert filled.constrained == len(picks)  # "Nobody" is no option: each choice asked again under its grammar


def test_a_choice_is_checked_against_its_options_and_its_grammar_parses_in_llama_cpp():
    pick = Pick(("Mia", "Leo", 'the "red" kite'), 2)
    assert pick.parse('Mia","Leo') == ["Mia", "Leo"]
    assert pick.parse('the \\"red\\" kite') == ['the "red" kite']
    assert pick.parse("Mia") == ["Mia"]
    for bad in ('Mia","Mia', 'Mia","Leo","the \\"red\\" kite', "Tom", ""):
        assert pick.parse(bad) is None
    assert LlamaGrammar.from_string(pick.grammar(), verbose=False) is not None
    assert LlamaGrammar.from_string(Pick(("Mia",), 1).grammar(), verbose=False) is not None


def test_only_fixed_shape_schemas_have_a_form():
    assert form_of(story.story_schema(3)) is None  # the free schema: the model decides how many of everything
    assert form_of(morph.REPLY_SCHEMA) is None  # as many keyframes as the model writes
    assert form_of(expand.LOCAL_SCHEMA) is None  # minLength 1: the grammar keeps it
    assert form_of({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
                    "additionalProperties": False}) is None  # an unbounded string is not a slot  # fmt: skip
    assert form_of({"type": "object", "properties": {"a": {"const": 1}}, "required": ["a"],
                    "additionalProperties": False}) is None  # nothing to write: no form needed  # fmt: skip


def test_the_gemma_prompt_is_llama_cpps_gemma_chat_format():
    messages = [{"role": "system", "content": "ignored"}, {"role": "user", "content": "Hi"}]
    assert gemma_prompt(messages) == "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"


@pytest.mark.llm
def test_the_real_server_fills_a_form_and_holds_an_off_list_choice_to_the_options(gemma_path, caplog):  # noqa: F811
    schema = {
        "type": "object",
        "properties": {
            "colour": {"type": "string", "maxLength": 20},
            "who": {"type": "array", "items": {"enum": ["Zorblaxine", "Quemtrovar"]}, "minItems": 1, "maxItems": 1},
        },
        "required": ["colour", "who"],
        "additionalProperties": False,
    }
    backend = make_backend(LLMConfig(backend="llama_cpp", model=GEMMA_FILE), [str(llm_models_dir())])
    messages = [{"role": "user", "content": "Tom wore a red hat. Who wore it, and in which colour? JSON only."}]
    try:
        with caplog.at_level(logging.INFO, logger="laser_story.llm.backends"):
            reply = backend.chat(messages, schema, Sampling(temperature=0.0, seed=0, max_tokens=64))
    finally:
        POOL.stop_all()
    value = json.loads(reply.text)
    assert schema_problem(value, schema) is None and value["who"][0] in ("Zorblaxine", "Quemtrovar")
    assert "filled a 2-slot reply form in 3 completions (1 under a grammar)" in caplog.text  # "Tom" is no option
