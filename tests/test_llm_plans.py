"""Plan validators: every error names the field and what was expected."""

from __future__ import annotations

import json

import pytest

from laser_story.llm.tasks import PlanError, parse_plan
from laser_story.llm.tasks.expand import ExpandPlan, parse_expand_plan
from laser_story.llm.tasks.morph import MorphPlan, parse_morph_plan
from laser_story.llm.tasks.story import StoryPlan, align_frames, normalise_story, parse_story_plan

MORPH = {"task": "morph", "prompts": ["a cat", "a tiger"], "controls": ["0"], "negative": "", "frames_per_segment": 8}
EXPAND = {
    "task": "expand",
    "global_caption": "a beach with children and a dog",
    "initial_caption": "two kids",
    "steps": [{"direction": "left", "caption": "a dog running"}],
}
STORY = {
    "task": "story",
    "characters": [{"name": "Mia", "description": "a girl in a red coat", "reference_image": None}],
    "frames": [
        {
            "sentence": "She waved.",
            "text": "Mia waved.",
            "characters": ["Mia"],
            "setting": "the park",
            "references": [{"mention": "She", "refers_to": ["Mia"]}],
        }
    ],
}


@pytest.mark.parametrize(("data", "kind"), [(MORPH, MorphPlan), (EXPAND, ExpandPlan), (STORY, StoryPlan)])
def test_plans_round_trip_through_json(data, kind):
    plan = parse_plan(json.dumps(data))
    assert isinstance(plan, kind)
    assert plan.to_json() == data
    assert parse_plan(plan.to_json()) == plan


def test_morph_plan_to_json_is_what_the_morph_interpolator_parses():
    plan = parse_plan(MORPH, task="morph")
    assert parse_morph_plan(plan.to_json()) == plan


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "plan_override is not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({**MORPH, "task": "paint"}), "field 'task' is 'paint'"),
        (json.dumps({**MORPH, "controls": ["0", "1"]}), "field 'controls' has 2 codes"),
        (json.dumps({**MORPH, "controls": ["7"]}), "each code must be one of 0, 1, 2, 3"),
        (
            json.dumps({**EXPAND, "steps": [{"direction": "sideways", "caption": "x"}]}),
            "field 'direction' is 'sideways'",
        ),
        (json.dumps({**EXPAND, "steps": []}), "field 'steps' needs at least 1"),
        (json.dumps({**EXPAND, "global_caption": ""}), "field 'global_caption' must be a non-empty string"),
    ],
)
def test_bad_overrides_name_the_field(text, expected):
    with pytest.raises(PlanError, match="plan_override") as info:
        parse_plan(text, "plan_override")
    assert expected in str(info.value)


def test_override_for_another_task_is_refused():
    with pytest.raises(PlanError, match="field 'task' is 'morph' but this node plans 'story'"):
        parse_plan(MORPH, "plan_override", task="story")


def test_missing_task_defaults_to_the_node_task():
    plan = parse_plan({k: v for k, v in MORPH.items() if k != "task"}, task="morph")
    assert isinstance(plan, MorphPlan)


def test_story_names_must_be_in_the_registry():
    bad = json.loads(json.dumps(STORY))
    bad["frames"][0]["references"][0]["refers_to"] = ["Tom"]
    with pytest.raises(PlanError, match=r"frames\[0\]: references\[0\].refers_to names 'Tom'"):
        parse_story_plan(bad)


def test_story_registry_names_are_unique_and_reference_images_are_indices():
    twice = {**STORY, "characters": STORY["characters"] * 2}
    with pytest.raises(PlanError, match="repeats 'Mia'"):
        parse_story_plan(twice)
    with pytest.raises(PlanError, match="reference_image' must be null or an image index"):
        parse_story_plan({**STORY, "characters": [{**STORY["characters"][0], "reference_image": "x.png"}]})
    plan = parse_story_plan({**STORY, "characters": [{**STORY["characters"][0], "reference_image": 2}]})
    assert plan.characters[0].reference_image == 2


def test_expand_plan_keeps_direction_order():
    data = {**EXPAND, "steps": [{"direction": d, "caption": d} for d in ("right", "up", "left")]}
    plan = parse_expand_plan(data)
    assert [s.direction for s in plan.steps] == ["right", "up", "left"]


def test_a_story_reply_that_lost_count_of_the_frames_is_moved_back_onto_its_sentences():
    sentences = ["Tom and Mia went to the park.", "Tom found a ball.", "He threw it to her.", "She laughed."]
    frames = [  # frame 2 left empty, so "He", "it", "her" and "She" each land one sentence early
        {"setting": "the park", "references": []},
        {"setting": "the park", "references": [
            {"mention": "He", "refers_to": ["Tom"]}, {"mention": "it", "refers_to": ["the ball"]},
            {"mention": "her", "refers_to": ["Mia"]}]},
        {"setting": "the park", "references": [{"mention": "She", "refers_to": ["Mia"]}]},
        {"setting": "the park", "references": []},
    ]  # fmt: skip
    reply = {"characters": [{"name": "Tom", "description": "a boy"}, {"name": "Mia", "description": "a girl"},
                            {"name": "the ball", "description": "a ball"}], "frames": frames}  # fmt: skip
    plan, notes = normalise_story(reply, sentences)
    assert [[(r.mention, r.refers_to) for r in f.references] for f in plan.frames] == [
        [], [], [("He", ("Tom",)), ("it", ("the ball",)), ("her", ("Mia",))], [("She", ("Mia",))]]  # fmt: skip
    assert notes == ["moved the frames onto the sentences their references name (the reply lost count)"]
    assert all(f.setting == "the park" for f in plan.frames)
    in_place = {**reply, "frames": [frames[0], frames[3], frames[1], frames[2]]}
    assert align_frames(in_place["frames"], sentences) is None  # frames as sent already place every reference
