"""Even spacing of a segment's frames along the path they trace, on synthetic latents (no ComfyUI needed)."""

from __future__ import annotations

import torch

from laser_story.attention.morph import even_alphas, evenest_subset


def path(points: list[float]) -> torch.Tensor:
    """Latents [n, 4, 2, 2] whose every value is the given point: consecutive distances are |difference| * 4."""
    return torch.tensor(points, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 4, 2, 2).contiguous()


def test_a_path_that_jumps_late_gets_its_weights_crowded_into_the_jump():
    alphas = [0.0, 0.25, 0.5, 0.75, 1.0]
    # the image holds until 0.75, then moves 17 times more in the last quarter than before
    weights = even_alphas(alphas, path([0.0, 0.1, 0.2, 0.3, 2.0]))
    assert weights[0] == 0.0 and weights[-1] == 1.0
    assert weights == sorted(weights)
    assert weights[1] > 0.75, weights  # a quarter of the way along the path lies inside the jump


def test_an_even_path_keeps_its_weights_and_a_still_one_is_left_alone():
    alphas = [0.0, 0.2, 0.4, 0.6, 0.8]  # the mixed control's cap
    torch.testing.assert_close(torch.tensor(even_alphas(alphas, path([0, 1, 2, 3, 4]))), torch.tensor(alphas))
    assert even_alphas(alphas, path([0, 0, 0, 0, 0])) == alphas


def test_the_evenest_subset_keeps_both_ends_and_skips_crowded_frames():
    # frames at 0, 0.1, 0.2, 1, 2, 3: of four, the evenest steps are 0 -> 1 -> 2 -> 3
    assert evenest_subset(path([0, 0.1, 0.2, 1, 2, 3]), 4) == [0, 3, 4, 5]
    assert evenest_subset(path([0, 1, 2]), 3) == [0, 1, 2]
    assert evenest_subset(path([0, 5]), 4) == [0, 1]
