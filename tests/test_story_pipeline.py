"""The story pipeline on a real ComfyUI model: patches stack with other packs', state is per run, the
consistency context is bounded."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def tiny(comfy_host):
    from laser_story.tinyworld import weights

    model, clip, vae, _ = weights.load()
    return model, clip, vae


def plan_of(n_frames: int):
    from laser_story.llm.tasks.story import parse_story_plan

    names = ["Pip", "Bo", "Rosa"]
    places = ["on the left", "on the right", "in the center", "at the top left"]
    frames = [{"sentence": f"{names[i % 3]} moves {places[i % 4]}.", "text": f"{names[i % 3]} moves {places[i % 4]}.",
               "characters": [names[i % 3]], "setting": ""} for i in range(n_frames)]  # fmt: skip
    characters = [{"name": "Pip", "description": "a small red star"}, {"name": "Bo", "description": "a large blue circle"},
                  {"name": "Rosa", "description": "a medium purple heart"}]  # fmt: skip
    return parse_story_plan({"task": "story", "characters": characters, "frames": frames})


def options(**attention):
    from laser_story.attention.story import StorySettings
    from laser_story.story.pipeline import SampleOptions

    return SampleOptions(steps=3, width=128, height=128, batch=2, attention=StorySettings(**attention))


def test_the_consistency_context_is_bounded_by_characters_not_frames(tiny):
    from laser_story.story import pipeline

    model, clip, vae = tiny
    story = pipeline.prepare(plan_of(12), clip)
    sizes = {}
    for n in (4, 12):
        stats = {}
        images, info = pipeline.sample(model, clip, vae, story, options(), frames=list(range(n)), stats=stats)
        assert images.shape[0] == n
        sizes[n] = stats["bank_bytes"]
    assert sizes[4] == sizes[12] > 0, "three characters bank the same features however long the story"
    assert [f["anchor_of"] for f in info[:4]] == [["Pip"], ["Bo"], ["Rosa"], []]
    assert all(f["shares_from_anchor"] == [f["characters"][0]] for f in info[3:])


def test_frames_share_identity_features_from_their_anchor(tiny):
    from laser_story.attention.story import find_story_state
    from laser_story.story import pipeline

    model, clip, vae = tiny
    story = pipeline.prepare(plan_of(5), clip)
    stats = {}
    pipeline.sample(model, clip, vae, story, options(), stats=stats)
    fired = stats["fired"]
    assert fired[("bank", "Pip")] > 0 and fired[("share", "Pip")] > 0 and fired[("share", "Bo")] > 0
    assert fired[("share", "Rosa")] == 0, "Rosa is only in frame 3, her anchor"
    assert find_story_state(model) is None, "the input MODEL is never patched"


def test_story_patches_stack_with_another_packs_replace_and_patches(tiny):
    import comfy.sample

    from laser_story.attention.story import apply_story_attention, find_story_state
    from laser_story.story import pipeline

    model, clip, vae = tiny
    calls = {"replace": 0, "attn1_patch": 0}

    def other_replace(q, k, v, extra):
        from comfy.ldm.modules.attention import optimized_attention

        calls["replace"] += 1
        return optimized_attention(q, k, v, extra["n_heads"])

    def other_patch(n, context, value, extra):
        calls["attn1_patch"] += 1
        return n, context, value

    other = model.clone()
    other.set_model_attn2_replace(other_replace, "output", 4, 0)
    other.set_model_attn1_patch(other_patch)
    story = pipeline.prepare(plan_of(2), clip)
    pipeline.sample(other, clip, vae, story, options())
    assert calls["attn1_patch"] > 0, "another pack's attn1_patch runs under the story patches"
    assert calls["replace"] == 0, "where holding is active it takes the block"
    patched = apply_story_attention(other, options().attention)
    assert find_story_state(patched) is not None
    cond = [[clip.encode_from_tokens(clip.tokenize("a red star")), {}]]
    latent = torch.zeros(1, 4, 16, 16)
    comfy.sample.sample(patched, comfy.sample.prepare_noise(latent, 0), 2, 5.0, "euler", "normal", cond, cond, latent,
                        disable_pbar=True, seed=0)
    assert calls["replace"] > 0, "a plain sampling run (no story state active) reaches the displaced replace"


def test_holding_changes_only_the_frames_it_holds(tiny):
    from laser_story.story import pipeline

    model, clip, vae = tiny
    story = pipeline.prepare(plan_of(2), clip)
    held, _ = pipeline.sample(model, clip, vae, story, options(consistency=False))
    free, _ = pipeline.sample(model, clip, vae, story, options(consistency=False, hold=False))
    again, _ = pipeline.sample(model, clip, vae, story, options(consistency=False))
    assert torch.equal(held, again), "deterministic: the state is reset per run"
    assert not torch.equal(held, free)
