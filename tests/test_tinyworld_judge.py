"""The weight-free judge: accuracy on rendered world scenes and the sequence / seam metrics."""

from __future__ import annotations

import numpy as np
import pytest

from laser_story.tinyworld import judge, world


def test_judge_attribute_accuracy_on_rendered_world_images_is_at_least_95_percent():
    acc = judge.AccuracyCounts()
    for i in range(300):
        scene = world.scene_from_seed(i, "judge-test")
        acc.add(judge.attribute_accuracy(scene, judge.detect(world.render(scene))))
    parts = ", ".join(f"{k} {acc.accuracy(k):.1%}" for k in ("shape", "colour", "size", "position", "background", "count"))
    print(f"\njudge attribute accuracy on 300 rendered world scenes: {acc.accuracy():.1%} ({parts})")
    assert acc.accuracy() >= 0.95
    for key in ("shape", "colour", "size", "position", "background"):
        assert acc.accuracy(key) >= 0.9, key


def test_judge_works_at_other_resolutions():
    acc = judge.AccuracyCounts()
    for i in range(40):
        scene = world.scene_from_seed(i, "judge-test-128")
        acc.add(judge.attribute_accuracy(scene, judge.detect(world.render(scene, 128))))
    assert acc.accuracy() >= 0.9


def test_shape_feature_ranges_separate_the_shapes():
    """Prints each shape's feature ranges on renders (the basis of ``classify_shape``'s thresholds)."""
    feats: dict[str, list[dict[str, float]]] = {s: [] for s in world.SHAPES}
    for i in range(150):
        scene = world.scene_from_seed(i, "judge-features")
        for det in judge.detect(world.render(scene)).objects:
            gt = min(scene.objects, key=lambda o: (o.cx - det.cx) ** 2 + (o.cy - det.cy) ** 2)
            feats[gt.shape].append(det.features)
    print()
    for shape, fs in feats.items():
        assert fs, shape
        cols = ("solidity", "rect_fill", "h3", "h4", "h5", "h6")
        print(f"{shape:<9}", "  ".join(f"{c} {min(f[c] for f in fs):.3f}..{max(f[c] for f in fs):.3f}" for c in cols))


def test_prompt_fidelity_of_a_render_against_its_own_caption_is_full():
    for i in range(30):
        scene = world.scene_from_seed(i, "fidelity")
        cap = world.caption(scene, world.rng_for("fid", i))
        f = judge.prompt_fidelity(world.render(scene), cap)
        assert f.scorable and f.score == 1.0, (cap, f)


def test_prompt_fidelity_counts_attributes_and_matches_objects_one_to_one():
    scene = world.Scene((world.make_object(world.rng_for(1), "star", "red", "large", "left"),), "grey")
    img = world.render(scene)
    f = judge.prompt_fidelity(img, "a large blue star on the left")
    assert (f.matched, f.total) == (3, 4)
    f2 = judge.prompt_fidelity(img, "a red star on the left and a red star on the right")
    assert f2.matched == 3 and f2.total == 6  # one detected star cannot satisfy two caption objects
    assert judge.prompt_fidelity(img, "a large red star on the left on a grey background").score == 1.0


def test_unscorable_caption_is_reported_not_failed():
    img = world.render(world.scene_from_seed(0))
    f = judge.prompt_fidelity(img, "a castle in the clouds")
    assert not f.scorable and f.score is None and "castle" in f.unknown_words


def test_identity_consistency():
    rng = world.rng_for("identity")
    frames = []
    for k in range(6):
        colour = "red" if k < 5 else "blue"
        frames.append(world.render(world.Scene((world.make_object(rng, "star", colour, "medium", "center"),), "sand")))
    assert judge.identity_consistency(frames, {"colour": "red", "shape": "star"}) == pytest.approx(5 / 6)
    assert judge.identity_consistency(frames) == pytest.approx(5 / 6)
    assert judge.identity_consistency(frames[:5], "Pip") == 0.0  # Pip is small, these are medium


def test_sequence_smoothness_of_a_linear_crossfade_is_direct_and_even():
    a = world.render(world.scene_from_seed(1)).astype(float) / 255
    b = world.render(world.scene_from_seed(2)).astype(float) / 255
    fade = [a * (1 - t) + b * t for t in np.linspace(0, 1, 9)]
    m = judge.sequence_smoothness(fade)
    assert m["directness_pix"] == pytest.approx(1.0, abs=1e-6)
    assert m["pdv_pix"] == pytest.approx(0.0, abs=1e-9)
    jumpy = [a] * 4 + [b] * 5
    j = judge.sequence_smoothness(jumpy)
    assert j["pdv_pix"] > m["pdv_pix"] and j["max_step_ratio_pix"] > 5
    back_and_forth = [a, b, a, b, a, b]
    assert judge.sequence_smoothness(back_and_forth)["directness_ssim"] > 4


def test_ssim_basics():
    a = world.render(world.scene_from_seed(5))
    assert judge.ssim(a, a) == pytest.approx(1.0)
    assert judge.ssim(a, world.render(world.scene_from_seed(6))) < 0.95


def test_seam_visibility_separates_hard_seams_from_smooth_joins():
    yy, xx = np.mgrid[0:64, 0:128] / 128.0
    smooth = np.stack([xx, yy, 0.5 + 0 * xx], -1)
    assert judge.seam_visibility(smooth, seams_x=[64]) == pytest.approx(1.0, abs=0.05)
    hard = smooth.copy()
    hard[:, 64:] = np.clip(hard[:, 64:] + 0.2, 0, 1)
    assert judge.seam_visibility(hard, seams_x=[64]) > 5
    assert judge.seam_visibility(np.transpose(hard, (1, 0, 2)), seams_y=[64]) > 5
    with pytest.raises(ValueError):
        judge.seam_visibility(smooth, seams_x=[500])


def test_judge_rejects_non_images():
    with pytest.raises(ValueError):
        judge.detect(np.zeros((64, 64)))
