"""Training data drawn from the procedural world: random scene batches with their object coverage, and the
held-out scenes every trainer must leave out."""

from __future__ import annotations

import numpy as np
import torch

from ..tinyworld import world


def heldout_keys() -> set:
    return {sc.key() for sc in world.heldout_scenes(500)}


def object_coverage(scene: world.Scene, size: int) -> np.ndarray:
    """(size, size) share of each pixel covered by any object."""
    cov = world.coverage(scene, size)
    return np.clip(np.sum(cov, 0), 0, 1) if cov else np.zeros((size, size))


def render_batch(rng: np.random.Generator, n: int, size: int = world.IMAGE_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """(images in [-1, 1] NCHW, object coverage N1HW) of ``n`` random training scenes."""
    imgs, alphas = [], []
    for _ in range(n):
        scene = world.sample_scene(rng)
        imgs.append(world.render(scene, size))
        alphas.append(object_coverage(scene, size))
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    a = torch.from_numpy(np.stack(alphas)).float()[:, None]
    return x, a
