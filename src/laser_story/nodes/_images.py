"""IMAGE helpers the pack's nodes share."""

from __future__ import annotations

import logging

import comfy.utils
import torch

logger = logging.getLogger("laser_story")


def fit_to_multiple_of_8(image: torch.Tensor, node: str, input_name: str = "image") -> tuple[torch.Tensor, str]:
    """``image`` [B, H, W, C] resized down to sides that are multiples of 8 (what the VAE needs), and a note saying
    so (empty when nothing changed)."""
    height, width = image.shape[1], image.shape[2]
    new_h, new_w = max(8, height // 8 * 8), max(8, width // 8 * 8)
    if (new_h, new_w) == (height, width):
        return image, ""
    resized = comfy.utils.common_upscale(image.movedim(-1, 1), new_w, new_h, "bilinear", "center").movedim(1, -1)
    note = f"{input_name}: resized from {width}x{height} to {new_w}x{new_h} (sides must be multiples of 8)"
    logger.warning("laser-story %s %s", node, note)
    return resized, note
