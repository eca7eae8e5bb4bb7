"""The story pipeline's pure parts: layout, frame prompts and token spans, the hold bias, the fuser."""

from __future__ import annotations

import pytest
import torch

from laser_story.attention.story import NEG, StoryFrame, StorySettings, StoryState, hold_bias
from laser_story.story import fuser as fuser_file
from laser_story.story import layout, prompts
from laser_story.story.pipeline import unresolved_pronouns


def test_a_place_phrase_belongs_to_the_nearest_name_before_it():
    text = "Kit and Bo move around: Kit on the top, Bo in the upper right corner."
    assert layout.places_in(text, ["Kit", "Bo"]) == {"Kit": "top", "Bo": "top right"}
    assert layout.places_in("Moss, a green square, comes at the bottom left to meet Pip.", ["Moss", "Pip"]) == {
        "Moss": "bottom left"}
    assert layout.places_in("Pip sat in the middle.", ["Pip"]) == {"Pip": "center"}


def test_characters_keep_their_place_until_moved_and_never_share_one():
    frames = [(["Pip"], {"Pip": "left"}), (["Pip", "Bo"], {"Bo": "left"}), (["Bo"], {}), (["Rosa"], {})]
    out = layout.story_layout(frames)
    assert out[0].places == {"Pip": "left"}
    assert out[1].places == {"Bo": "left", "Pip": "center"} and "Pip moved from left" in out[1].notes[0]
    assert out[2].places == {"Bo": "left"}, "Bo stays where the last sentence put him"
    assert out[3].places == {"Rosa": "center"}, "a character never placed gets the default slot"
    assert layout.story_layout([(["A", "B"], {})])[0].places == {"A": "left", "B": "right"}


def test_more_characters_than_places_is_refused_with_the_fix():
    names = [f"C{i}" for i in range(10)]
    with pytest.raises(layout.LayoutError, match="frame 1 has 10 characters.*at most 9"):
        layout.story_layout([(names, {})])


def test_a_box_mask_follows_the_token_grid():
    mask = layout.box_mask(layout.place_box("left"), 16, 16)
    assert mask.shape == (16, 16) and mask[8, 0] == 1 and mask[8, 15] == 0 and mask[0, 0] == 0
    assert layout.box_mask(layout.place_box("left"), 5, 7).shape == (5, 7), "odd grids (convs round up)"


def test_every_mention_is_tagged_and_the_description_follows_the_first():
    segments = prompts.frame_segments("Tilly and Bo move around: Tilly on the bottom, Bo at the bottom right.",
                                      ["Tilly", "Bo"], {"Tilly": "a medium yellow triangle", "Bo": "a large blue circle"},
                                      "a sand background")  # fmt: skip
    assert prompts.plain_prompt(segments) == ("Tilly, a medium yellow triangle, and Bo, a large blue circle, move around: "
                                              "Tilly on the bottom, Bo at the bottom right, a sand background")
    assert [(s.character, s.role) for s in segments if s.character] == [
        ("Tilly", "name"), ("Tilly", "description"), ("Bo", "name"), ("Bo", "description"), ("Tilly", "name"), ("Bo", "name")]
    stated = prompts.frame_segments("Moss, a medium green square, is on the left.", ["Moss"], {"Moss": "a medium green square"})
    assert prompts.plain_prompt(stated) == "Moss, a medium green square, is on the left."
    assert prompts.weighted_prompt([prompts.Segment("a (b)")]) == "(a \\(b\\):1.0)"


def test_unresolved_pronouns_are_flagged_not_guessed():
    assert unresolved_pronouns("He waved at her.", ["He"]) == ["her"]
    assert unresolved_pronouns("It was late.", []) == []


def state_with(frames, context_length=77):
    state = StoryState(settings=StorySettings())
    state.frames, state.context_length = tuple(frames), context_length
    return state


def test_the_hold_bias_keeps_each_token_inside_its_region_only():
    boxes = {"Pip": layout.place_box("left"), "Bo": layout.place_box("right")}
    frames = [StoryFrame({"Pip": (1, 2), "Bo": (5,)}, boxes), StoryFrame({"Bo": (3,)}, {"Bo": boxes["Bo"]})]
    state = state_with(frames)
    bias = hold_bias(state, [1, 0], 4, 8, 8, 154, "cpu", torch.float32)  # context tiled twice (lcm with the negative)
    assert bias.shape == (4, 64, 154)
    assert torch.count_nonzero(bias[:2]) == 0, "the negative chunk is untouched"
    counted = {}
    for row, frame in zip((2, 3), frames, strict=True):
        for name, tokens in frame.tokens.items():
            inside = layout.box_mask(frame.boxes[name], 8, 8).flatten() > 0
            for t in tokens:
                for column in (t, t + 77):
                    assert torch.all(bias[row, inside, column] == 0) and torch.all(bias[row, ~inside, column] == NEG)
                    counted[(row, name)] = counted.get((row, name), 0) + int((bias[row, :, column] == 0).sum())
        held = {t + j * 77 for ts in frame.tokens.values() for t in ts for j in (0, 1)}
        others = [c for c in range(154) if c not in held]
        assert torch.count_nonzero(bias[row][:, others]) == 0, "no other token is touched"
    assert counted == {(2, "Pip"): 4 * 16, (2, "Bo"): 2 * 16, (3, "Bo"): 2 * 16}  # (tokens x copies) x 16 cells of 64
    probs = torch.softmax(torch.randn(4, 64, 154) + bias, -1)
    outside = layout.box_mask(boxes["Pip"], 8, 8).flatten() == 0
    assert float(probs[2][outside][:, [1, 2, 78, 79]].max()) < 1e-6


def test_the_fuser_loads_storygpt_v_shapes_and_names_both_sizes_on_a_mismatch(tmp_path):
    reference = fuser_file.CharFuser(768, 768)
    state = {f"postfuse_module.{k}": v for k, v in reference.state_dict().items()}
    assert len(state) == 14 and sum(v.numel() for v in state.values()) == 2_958_336
    loaded = fuser_file.from_state_dict(state)
    assert (loaded.text_dim, loaded.image_dim) == (768, 768)
    bin_path = tmp_path / "pytorch_model.bin"
    torch.save({**state, "unet.conv_in.weight": torch.zeros(1)}, bin_path)
    assert fuser_file.load(str(bin_path))[0].image_dim == 768
    tokens = torch.randn(77, 768)
    fused = loaded.fuse(tokens, {5: torch.randn(768)})
    assert torch.equal(fused[:5], tokens[:5]) and torch.equal(fused[6:], tokens[6:]) and not torch.equal(fused[5], tokens[5])
    with pytest.raises(fuser_file.FuserError, match="64-d image embeddings, but the fuser was trained on 768-d"):
        loaded.fuse(tokens, {5: torch.randn(64)})
    small = fuser_file.CharFuser(32, 64)
    path = tmp_path / "fuser.safetensors"
    fuser_file.save(str(path), small, {"command": "test"})
    again, meta = fuser_file.load(str(path))
    assert meta["kind"] == fuser_file.KIND and (again.text_dim, again.image_dim) == (32, 64)
    with pytest.raises(fuser_file.FuserError, match="not a character fuser"):
        fuser_file.from_state_dict({"something.weight": torch.zeros(2)})
