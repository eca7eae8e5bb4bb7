"""The procedural world: determinism, variety, captions and their parser."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from laser_story.tinyworld import world


def test_scene_and_render_are_deterministic_by_seed():
    a, b = world.scene_from_seed(7), world.scene_from_seed(7)
    assert a == b
    assert np.array_equal(world.render(a), world.render(b))
    assert world.scene_from_seed(8) != a
    img = world.render(a)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert world.render(a, 128).shape == (128, 128, 3)


def test_world_covers_the_required_variety():
    scenes = [world.scene_from_seed(i) for i in range(600)]
    objs = [o for s in scenes for o in s.objects]
    assert len(set(world.SHAPES)) >= 6 and {o.shape for o in objs} == set(world.SHAPES)
    assert len(world.COLOURS) >= 8 and {o.colour for o in objs} == set(world.COLOURS)
    assert {o.size for o in objs} == set(world.SIZES) and len(world.SIZES) >= 3
    assert {o.position for o in objs} == set(world.POSITIONS)
    assert {s.background for s in scenes} == set(world.BACKGROUNDS) and len(world.BACKGROUNDS) >= 4
    assert Counter(len(s.objects) for s in scenes).keys() == {1, 2, 3}
    rotations = [o.rotation for o in objs if o.shape != "circle"]
    stretches = [o.stretch for o in objs]
    assert np.ptp(rotations) > 40 and np.ptp(np.log(stretches)) > 0.3  # pose-like variation
    assert any(o.character for o in objs)


def test_objects_do_not_overlap():
    for i in range(200):
        scene = world.scene_from_seed(i)
        masks = world.render_masks(scene)
        total = np.sum(masks, axis=0)
        assert total.max() <= 1, f"scene {i} has overlapping objects"
        assert all(m.sum() > 20 for m in masks)


def test_captions_have_several_phrasings_and_parse_back_exactly():
    templates = set()
    for i in range(3000):
        scene = world.scene_from_seed(i)
        segs, stated = world.caption_segments(scene, world.rng_for("t", i))
        text = world.join_segments(segs)
        parsed = world.parse_caption(text)
        assert sorted(map(sorted, (d.items() for d in stated))) == sorted(map(sorted, (d.items() for d in parsed.objects))), text
        assert parsed.unknown_words == [], text
        shape_words = " ".join(w for w in text.replace(",", " ,").split() if w in world.SHAPES or w in world.CAST_BY_NAME)
        templates.add(text.replace(shape_words, "").split(" ")[0] if shape_words else text)
    assert len(templates) >= 5


@pytest.mark.parametrize(
    ("caption", "objects", "background"),
    [
        ("a big red star on the left", [{"shape": "star", "colour": "red", "size": "large", "position": "left"}], None),
        ("Pip at the top right", [{"shape": "star", "colour": "red", "size": "small", "position": "top right"}], None),
        ("on the left, a blue circle; at the bottom, a tiny green cross on stripes",
         [{"shape": "circle", "colour": "blue", "position": "left"},
          {"shape": "cross", "colour": "green", "size": "small", "position": "bottom"}], "stripes"),
        ("a yellow heart and Bo", [{"shape": "heart", "colour": "yellow"},
                                   {"shape": "circle", "colour": "blue", "size": "large"}], None),
        ("a red square in the middle with a gray background",
         [{"shape": "square", "colour": "red", "position": "center"}], "grey"),
    ],
)
def test_parse_caption_examples(caption, objects, background):
    parsed = world.parse_caption(caption)
    assert parsed.objects == objects
    assert parsed.background == background


def test_caption_outside_the_vocabulary_is_unscorable_not_an_error():
    parsed = world.parse_caption("a dragon flying over snowy mountains at sunset")
    assert not parsed.scorable
    assert "dragon" in parsed.unknown_words
    mixed = world.parse_caption("a red star next to a dragon")
    assert mixed.scorable and mixed.objects == [{"shape": "star", "colour": "red"}] and "dragon" in mixed.unknown_words


def test_heldout_captions_are_fixed_and_excluded_from_training_scenes():
    pairs = world.heldout_captions(100)
    assert len(pairs) == 100 and pairs == world.heldout_captions(100)
    keys = {s.key() for s, _ in pairs}
    train = [world.scene_from_seed(i, "train", exclude=keys) for i in range(300)]
    assert not keys & {s.key() for s in train}


def test_cast_is_fixed_and_named():
    names = [c.name for c in world.CAST]
    assert len(names) == len(set(names)) >= 6
    assert world.CAST_BY_NAME["pip"].description == "a small red star"
    for c in world.CAST:
        assert c.shape in world.SHAPES and c.colour in world.COLOURS and c.size in world.SIZES


def test_scene_json_round_trip():
    s = world.scene_from_seed(3)
    assert world.Scene.from_json(s.to_json()) == s
