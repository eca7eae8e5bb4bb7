"""Quality figures of the default (128x128) tiny model, printed and checked against what it reaches (prompt
fidelity 86 %; the goal of 90 % with every attribute >= 80 % is not reached yet: shape is at 60 %).

Reproduce the same figures with ``python -m laser_story.tinyworld.evaluate``.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.host


def test_judge_accuracy_after_a_vae_round_trip(comfy_host):
    """How much the tiny VAE loses, in the judge's terms (informative; the 95 % bar is on renders)."""
    from laser_story.tinyworld import evaluate, weights

    _model, _clip, vae, meta = weights.load()
    acc = evaluate.judge_accuracy(100, vae=vae, size=weights.image_size(meta))
    print("\n" + evaluate.accuracy_lines("100 world scenes after a VAE round trip", acc)[0])
    assert acc.accuracy() >= 0.95


def test_prompt_fidelity_on_100_heldout_captions_is_at_least_84_percent(comfy_host):
    from laser_story.tinyworld import evaluate, weights, world

    model, clip, vae, meta = weights.load()
    captions = [c for _, c in world.heldout_captions(100)]
    images = evaluate.generate(model, clip, vae, captions, list(range(100)), size=weights.image_size(meta))
    report = evaluate.fidelity_report(images, captions)
    print(f"\nmodel: {meta['command']}")
    print("\n".join(report.lines()))
    assert report.scorable == 100
    assert report.fidelity >= 0.84


def test_image_encoder_retrieves_captions_and_tells_characters_apart(comfy_host):
    """On 200 held-out scenes the own caption ranks first among 20 for >= 90 % of images; a character in two
    places is more alike than two characters >= 95 % of the time (fixed cases, written before training)."""
    from laser_story.tinyworld import encoder, evaluate, weights

    _model, clip, _vae, _ = weights.load(weights.BASE_FILE)
    clip_vision, head, meta = encoder.load()
    report = evaluate.encoder_report(clip, clip_vision, head)
    print(f"\nimage encoder: {meta['command']}\n" + "\n".join(report.lines()))
    assert report.retrieval_top1 >= 0.90
    assert report.same_character >= 0.95


def test_a_caption_outside_the_world_still_generates_and_is_reported_unscorable(comfy_host):
    from laser_story.tinyworld import evaluate, weights

    model, clip, vae, meta = weights.load()
    captions = ["a zebra eating pizza on the moon", "a large red star in the center"]
    images = evaluate.generate(model, clip, vae, captions, [0, 1], steps=6, size=weights.image_size(meta))
    report = evaluate.fidelity_report(images, captions)
    assert images.shape[0] == 2 and report.per_caption[0] is None and report.per_caption[1] is not None
    assert report.scorable == 1
