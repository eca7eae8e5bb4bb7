"""The planner's generated training data: deterministic, and every gold reply taken as it is by the pack's own
schemas and normalisers, with the pronouns, groups and same-gender pairs the tuned model has to learn."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from laser_story.llm.evaluation import score_story
from laser_story.llm.language import find_word
from laser_story.llm.structured import schema_problem
from laser_story.llm.tasks import expand, morph, story
from laser_story.training import planner_data

STORIES = 300
GENDERED = {"he", "she", "him", "her", "his", "hers"}


@pytest.fixture(scope="module")
def stories() -> list[dict]:
    return [planner_data.story_example(0, i) for i in range(STORIES)]


@pytest.mark.parametrize("make", [planner_data.story_example, planner_data.morph_example, planner_data.expand_example])
def test_examples_are_deterministic(make):
    assert make(3, 7) == make(3, 7)
    assert make(3, 7) != make(3, 8)
    assert make(3, 7) != make(4, 7)


def test_stories_pass_the_story_normaliser(stories):
    for ex in stories:
        sentences, gold = ex["sentences"], ex["gold"]
        assert 3 <= len(sentences) <= 10
        assert len(gold["frames"]) == len(ex["present"]) == len(ex["resolved"]) == len(sentences)
        assert schema_problem(gold, story.story_schema(len(sentences))) is None
        _, notes = story.normalise_story(gold, sentences)
        assert notes == [], (ex["id"], notes)
        names = {c["name"] for c in gold["characters"]}
        for sentence, frame, present in zip(sentences, gold["frames"], ex["present"], strict=True):
            assert frame["setting"]
            assert set(present) <= names
            counts: dict[str, int] = defaultdict(int)
            for ref in frame["references"]:
                counts[ref["mention"].lower()] += 1
                assert set(ref["refers_to"]) <= names
            for mention, count in counts.items():
                found, position = 0, 0
                while (span := find_word(sentence, mention, position)) is not None:
                    found, position = found + 1, span[1]
                assert found == count, (ex["id"], sentence, mention)


def test_generated_stories_score_as_labelled_stories(stories):
    """``labelled_story`` puts a generated story in the held stories' format: its own gold plan scores 100 %."""
    for ex in stories[:40]:
        labelled = planner_data.labelled_story(ex)
        plan, _ = story.normalise_story(ex["gold"], ex["sentences"])
        score = score_story(plan, labelled)
        assert score.total == sum(len(f["references"]) for f in ex["gold"]["frames"])
        assert score.correct == score.total, ex["id"]
        assert all(s["present"] for s in labelled["sentences"]), ex["id"]


def test_stories_cover_the_references_to_learn(stories):
    mentions = {r["mention"].lower() for ex in stories for f in ex["gold"]["frames"] for r in f["references"]}
    assert {"he", "she", "they", "him", "her", "them", "his", "its", "their", "hers", "i", "you"} <= mentions
    assert {"the others", "the two of them"} <= mentions
    assert max(len(ex["gold"]["characters"]) for ex in stories) >= 4
    assert any(len(r["refers_to"]) == 4 for ex in stories for f in ex["gold"]["frames"] for r in f["references"])


def _refs(ex: dict) -> list[dict]:
    return [r for f in ex["gold"]["frames"] for r in f["references"]]


def test_stories_resolve_same_gender_pairs_and_subsets(stories):
    same_gender = subset = False
    for ex in stories:
        by_pronoun = defaultdict(set)
        for ref in _refs(ex):
            if len(ref["refers_to"]) == 1:
                by_pronoun[ref["mention"].lower()].add(ref["refers_to"][0])
        same_gender |= len(by_pronoun["he"]) >= 2 or len(by_pronoun["she"]) >= 2
        people = {n for pronoun in GENDERED for n in by_pronoun[pronoun]}
        subset |= any(len(r["refers_to"]) >= 2 and people - set(r["refers_to"]) for r in _refs(ex))
    assert same_gender and subset


def test_morph_examples_pass_the_morph_parser():
    for i in range(100):
        ex = planner_data.morph_example(0, i)
        gold = ex["gold"]
        assert schema_problem(gold, morph.REPLY_SCHEMA) is None
        plan, notes = morph.normalise_reply(gold)
        assert notes == []
        assert 2 <= len(plan.prompts) <= 4 and len(plan.controls) == len(plan.prompts) - 1
        assert plan == morph.parse_morph_plan({"task": "morph", **gold})
        assert plan.controls[0] != "3"


@pytest.mark.parametrize(
    ("kinds", "codes"),
    [(["pose", "pose", "look"], ["1", "3", "0"]), (["look", "both", "both"], ["0", "2", "3"]), (["both"], ["2"])],
)
def test_control_codes(kinds, codes):
    assert planner_data.control_codes(kinds) == codes


def test_expand_examples_pass_the_expand_parser():
    for i in range(100):
        ex = planner_data.expand_example(0, i)
        assert 1 <= len(ex["directions"]) <= 4 and len(ex["local_captions"]) == len(ex["directions"])
        assert schema_problem({"global_caption": ex["global_caption"]}, expand.GLOBAL_SCHEMA) is None
        shown = [ex["image_caption"]]
        for caption in ex["local_captions"]:
            assert schema_problem({"caption": caption}, expand.LOCAL_SCHEMA) is None
            assert caption not in shown
            shown.append(caption)
        steps = [{"direction": d, "caption": c} for d, c in zip(ex["directions"], ex["local_captions"], strict=True)]
        plan = expand.parse_expand_plan({"task": "expand", "global_caption": ex["global_caption"],
                                         "initial_caption": ex["image_caption"], "steps": steps})
        assert [s.direction for s in plan.steps] == ex["directions"]


def test_chat_examples_have_no_few_shot_example_and_json_replies():
    examples = planner_data.chat_examples(20, 10, 10, seed=0)
    expected = 20 + 10 + sum(1 + len(planner_data.expand_example(0, i)["directions"]) for i in range(10))
    assert len(examples) == expected
    assert {ex["task"] for ex in examples} == set(planner_data.TUNED_INSTRUCTIONS)
    few_shot = [line.split(". ", 1)[1] for line in story.STORY_EXAMPLE[0].splitlines()]
    few_shot += [morph.EXAMPLE[0], expand.GLOBAL_EXAMPLE[0], expand.LOCAL_EXAMPLE[0], story.STORY_INSTRUCTIONS]
    for ex in examples:
        user, reply = ex["messages"]
        assert user["role"] == "user" and reply["role"] == "assistant"
        assert user["content"].startswith(planner_data.TUNED_INSTRUCTIONS[ex["task"]])
        assert not any(text in user["content"] for text in few_shot)
        assert isinstance(json.loads(reply["content"]), dict)
        assert reply["content"] == json.dumps(json.loads(reply["content"]), separators=(",", ":"))
    assert planner_data.chat_examples(20, 10, 10, seed=0) == examples


def test_main_writes_json_lines(tmp_path, capsys):
    out = tmp_path / "data" / "train.jsonl"
    assert planner_data.main(["--seed", "1", "--stories", "4", "--morph", "2", "--expand", "2", "--out", str(out)]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 4 + 2 + 2 * 2
    assert all(json.loads(line)["messages"] for line in lines)
    assert f"wrote {len(lines)} chat examples" in capsys.readouterr().out
