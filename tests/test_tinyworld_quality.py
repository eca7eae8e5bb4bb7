"""Quality figures of the shipped tiny model, printed and checked (issue: judge >= 95 %, fidelity >= 80 %).

Reproduce the same figures with ``python -m laser_story.tinyworld.evaluate``.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.host


def test_judge_accuracy_after_a_vae_round_trip(comfy_host):
    """How much the tiny VAE loses, in the judge's terms (informative; the 95 % bar is on renders)."""
    from laser_story.tinyworld import evaluate, weights

    _model, _clip, vae, _ = weights.load()
    acc = evaluate.judge_accuracy(100, vae=vae)
    print("\n" + evaluate.accuracy_lines("100 world scenes after a VAE round trip", acc)[0])
    assert acc.accuracy() >= 0.8


def test_prompt_fidelity_on_100_heldout_captions_is_at_least_80_percent(comfy_host):
    from laser_story.tinyworld import evaluate, weights, world

    model, clip, vae, meta = weights.load()
    captions = [c for _, c in world.heldout_captions(100)]
    images = evaluate.generate(model, clip, vae, captions, list(range(100)))
    report = evaluate.fidelity_report(images, captions)
    print(f"\nmodel: {meta['command']}")
    print("\n".join(report.lines()))
    assert report.scorable == 100
    assert report.fidelity >= 0.80
