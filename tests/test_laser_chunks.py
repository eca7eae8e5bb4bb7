"""Cond/uncond chunking of the LASER attention patch, on synthetic tensors (no ComfyUI needed)."""

from __future__ import annotations

import pytest
import torch

from laser_story.attention.laser import ControlSettings, LaserState, SegmentControl, laser_attn1_patch
from laser_story.attention.state import FeatureBank

SIGMAS = torch.tensor([10.0, 5.0, 1.0, 0.0])
TOKENS, CHANNELS = 6, 4


def options(state: LaserState, cond_or_uncond: list[int], layer: int = 12, step: int = 1) -> dict:
    return {"laser_story": state, "sigmas": SIGMAS[step:step + 1], "transformer_index": layer, "block_index": 0,
            "cond_or_uncond": cond_or_uncond}


def feature(value: float, batch: int = 1) -> torch.Tensor:
    return torch.full((batch, TOKENS, CHANNELS), value)


@pytest.fixture
def banked() -> tuple[FeatureBank, SegmentControl]:
    """A bank captured from a run whose batch came in uncond-first order: uncond = 1.0, cond = 2.0."""
    control = SegmentControl("1", ControlSettings(kv_t=0.0), steps=3)
    bank = FeatureBank(torch.float32)
    state = LaserState("capture", bank, SIGMAS, settings=ControlSettings(), control=control)
    captured = torch.cat([feature(1.0), feature(2.0)])
    out = laser_attn1_patch(captured, captured, captured, options(state, [1, 0]))
    assert all(o is captured for o in out)
    return bank, control


@pytest.mark.parametrize("order", [[1, 0], [0, 1], [0]])
def test_injection_matches_each_chunk_to_its_own_source(banked, order):
    bank, control = banked
    frames = 3
    state = LaserState("inject", bank, SIGMAS, settings=ControlSettings(), control=control)
    own = torch.cat([feature(10.0 + kind, frames) for kind in order])
    n, k, v = laser_attn1_patch(own, own, own, options(state, order))
    assert torch.equal(n, own), "K/V injection must keep the frames' own queries"
    expected = torch.cat([feature({1: 1.0, 0: 2.0}[kind], frames) for kind in order])
    assert torch.equal(k, expected) and torch.equal(v, expected)
    assert state.fired[("kv", 1, 12)] == 1


def test_uncond_chunk_falls_back_to_the_cond_source_of_a_cfg1_inversion():
    control = SegmentControl("0", ControlSettings(qk_t=1.0), steps=3)
    bank = FeatureBank(torch.float32)
    capture = LaserState("capture", bank, SIGMAS, settings=ControlSettings(), control=control)
    laser_attn1_patch(feature(5.0), feature(5.0), feature(5.0), options(capture, [0]))
    inject = LaserState("inject", bank, SIGMAS, settings=ControlSettings(), control=control)
    own = torch.cat([feature(7.0, 2), feature(8.0, 2)])
    n, k, v = laser_attn1_patch(own, own, own, options(inject, [1, 0]))
    assert torch.equal(n, feature(5.0, 4)) and torch.equal(k, feature(5.0, 4)), "Q/K come from the source"
    assert torch.equal(v, own), "Q/K injection keeps the frames' own values"


def test_patch_is_inert_outside_a_laser_run():
    x = feature(3.0, 2)
    for opts in ({}, options(LaserState(), [0, 1]),
                 {**options(LaserState("inject", FeatureBank(), SIGMAS, settings=ControlSettings(), control=SegmentControl("1", ControlSettings(), 3)), [0, 1]),
                  "sigmas": torch.tensor([7.5])}):
        out = laser_attn1_patch(x, x, x, opts)
        assert all(o is x for o in out)


def test_fp16_bank_halves_memory():
    full, half = FeatureBank(torch.float32), FeatureBank(torch.float16)
    for bank in (full, half):
        bank.put("attn", 0, (12, 0), 0, feature(1.0))
    assert half.nbytes * 2 == full.nbytes
