"""Animating a given image: the rule-based planner edits the image's caption by the described change, and the
judge writes a caption for an image that has none."""

from __future__ import annotations

import pytest

from laser_story.llm.caption_edit import edit_caption
from laser_story.llm.tasks.morph import plan_morph
from laser_story.tinyworld import judge, world

SCENE = "a large red star on the left and a small blue circle at the bottom on a grey background"


@pytest.mark.parametrize(
    ("stage", "caption", "looks", "pose"),
    [
        ("the star turns blue", "a large blue star on the left and a small blue circle at the bottom on a grey background", True, False),
        ("the circle becomes a square", "a large red star on the left and a small blue square at the bottom on a grey background", False, True),
        ("the star moves to the top right", "a large red star in the top right corner and a small blue circle at the bottom on a grey background", False, True),
        ("the circle slowly grows", "a large red star on the left and a medium blue circle at the bottom on a grey background", False, True),
        ("the red star becomes an orange heart", "a large orange heart on the left and a small blue circle at the bottom on a grey background", True, True),
    ],
)
def test_a_change_edits_only_the_object_it_names(stage, caption, looks, pose):
    edit = edit_caption(SCENE, stage)
    assert (edit.caption, edit.looks, edit.pose) == (caption, looks, pose)


def test_what_no_rule_knows_is_left_to_the_general_planner():
    assert edit_caption(SCENE, "the dog turns blue") is None  # no dog in the caption
    assert edit_caption(SCENE, "the star sings") is None  # no change these rules know
    assert edit_caption("a red car on a street", "the car turns blue").caption == "a blue car on a street"


def test_a_chained_instruction_keeps_every_untouched_word_and_picks_each_segments_code():
    plan = plan_morph("the star turns yellow, then it moves up", SCENE)
    assert plan.prompts == (
        SCENE,
        "a large yellow star on the left and a small blue circle at the bottom on a grey background",
        "a large yellow star in the top left corner and a small blue circle at the bottom on a grey background",
    )
    assert plan.controls == ("0", "1")
    assert plan_morph("the star turns green and becomes a square", SCENE).controls == ("2",)
    assert plan_morph("a cat turns into a tiger").prompts == ("a cat", "a tiger")  # no caption: the general rules


def test_the_judge_captions_a_rendered_scene_as_the_world_writes_it():
    scene = world.scene_from_seed(3, "heldout")
    image = world.render(scene, 128)
    caption = judge.caption_of(image)
    assert judge.prompt_fidelity(image, caption).score == 1.0
    assert sorted(caption.removesuffix(f" {world.BACKGROUND_PHRASES[scene.background][0]}").replace(" and ", ", ").split(", ")) == sorted(
        world.full_caption([o.attributes()], None) for o in scene.objects)


def test_the_image_to_animation_cases_are_rendered_scenes_with_their_captions():
    import json
    from pathlib import Path

    cases = json.loads((Path(__file__).parents[1] / "benchmarks" / "data" / "animate_cases.json").read_text())["cases"]
    assert len(cases) >= 24 and len({c["id"] for c in cases}) == len(cases)
    assert {tuple(c["expected_controls"]) for c in cases} == {("0",), ("1",), ("2",), ("0", "1")}
    for case in cases:
        scene = world.Scene.from_json(case["scene"])
        assert 1 <= len(scene.objects) <= 3
        assert judge.prompt_fidelity(world.render(scene, 128), case["caption"]).score == 1.0, case["id"]
        assert case["target"] != case["caption"] and case["changed"]
