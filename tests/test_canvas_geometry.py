"""Expansion geometry, masks, pre-fill and blending of the canvas pipeline (pure torch, no ComfyUI)."""

from __future__ import annotations

import pytest
import torch

from laser_story.canvas import geometry


@pytest.mark.parametrize("direction", geometry.DIRECTIONS)
def test_each_direction_grows_the_canvas_by_exactly_the_step(direction):
    step = geometry.plan_step(64, 96, direction, 32, 64)
    horizontal = direction in ("left", "right")
    assert step.size == ((64, 128) if horizontal else (96, 96))
    assert (step.new.width, step.new.height) == ((32, 64) if horizontal else (96, 32))
    win = step.window
    assert win.rows().start <= step.new.top and win.cols().start <= step.new.left
    assert win.top + win.height >= step.new.top + step.new.height and win.left + win.width >= step.new.left + step.new.width
    assert (win.width if horizontal else win.height) == 64, "the window along the growth axis is the window size"


def test_the_window_stays_the_same_size_as_the_canvas_grows():
    h, w, spans = 64, 64, set()
    for _ in range(16):
        step = geometry.plan_step(h, w, "right", 32, 64)
        spans.add((step.window.height, step.window.width))
        h, w = step.size
    assert (h, w) == (64, 64 + 16 * 32) and spans == {(64, 64)}


@pytest.mark.parametrize("direction", geometry.DIRECTIONS)
def test_known_pixels_outside_the_blend_band_are_unchanged(direction):
    torch.manual_seed(0)
    canvas = torch.rand(64, 80, 3)
    step = geometry.plan_step(64, 80, direction, 32, 64)
    grown = geometry.prefill(canvas, step)
    top, left = step.offset
    assert torch.equal(grown[top : top + 64, left : left + 80], canvas)
    mask = geometry.window_mask(step, overlap=8)
    out = geometry.composite(grown, torch.rand(step.window.height, step.window.width, 3), step, mask)
    full = torch.zeros(step.size)
    full[step.window.rows(), step.window.cols()] = mask
    old = full[top : top + 64, left : left + 80]
    kept = old == 0
    assert torch.equal(out[top : top + 64, left : left + 80][kept], canvas[kept])
    assert int((old > 0).sum()) == 8 * (64 if direction in ("left", "right") else 80), "exactly the 8-pixel band blends"
    assert torch.equal(full[step.new.rows(), step.new.cols()], torch.ones(step.new.height, step.new.width))


def test_the_mask_ramps_across_the_overlap_and_the_latent_mask_keeps_seam_cells_regenerated():
    step = geometry.plan_step(16, 32, "right", 16, 32)
    mask = geometry.window_mask(step, overlap=4)
    row = mask[0].tolist()
    assert row[16:] == [1.0] * 16 and row[:11] == [0.0] * 11
    assert row[11:16] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    lat = geometry.latent_mask(mask)
    assert lat.shape == (1, 1, 2, 4) and lat[0, 0, 0].tolist() == pytest.approx([0.0, 0.8, 1.0, 1.0])


def test_prefill_continues_the_edge_bands():
    canvas = torch.zeros(32, 32, 3)
    canvas[::2] = 1.0  # horizontal stripes, one pixel each
    canvas[:, -4:, 0] = 0.5  # an object at the edge, thinner than the band: the median ignores it
    grown = geometry.prefill(canvas, geometry.plan_step(32, 32, "right", 16, 32), blur=1)
    strip = grown[:, 32:]
    assert torch.equal(strip[:, 0], strip[:, -1]) and torch.equal(strip[::2, 0], torch.ones(16, 3))


def test_colour_match_removes_a_shift_of_the_decoded_window():
    step = geometry.plan_step(32, 32, "right", 16, 32)
    mask = geometry.window_mask(step, overlap=4)
    reference = torch.full((32, 32, 3), 0.5)
    matched = geometry.colour_match(reference + 0.1, reference, mask)
    assert torch.allclose(matched[mask > 0], torch.full_like(matched[mask > 0], 0.5), atol=1e-6)


def test_bad_geometry_is_refused_with_the_input_and_the_fix():
    with pytest.raises(ValueError, match="direction: 'sideways' is not one of left, right, up, down"):
        geometry.plan_step(64, 64, "sideways", 32, 64)
    with pytest.raises(ValueError, match="step: 96 px is larger than the window"):
        geometry.plan_step(64, 64, "right", 96, 64)
    with pytest.raises(ValueError, match="step: 30 must be a positive multiple of 8"):
        geometry.plan_step(64, 64, "right", 30, 64)
    with pytest.raises(ValueError, match=r"over the limit of 67 MP"):
        geometry.check_canvas(8192, 16384)
