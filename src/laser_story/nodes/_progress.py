"""The node progress bar every sampling node shows: steps done over the whole job, with a preview of the latest
x0 decoded by ComfyUI's own latent previewer."""

from __future__ import annotations

from collections.abc import Callable

import comfy.utils
import latent_preview
import torch


def latent_progress(model) -> Callable[[int, int, torch.Tensor | None], None]:
    """progress(done, total, x0 latent or None) for the running node, previews as the user's settings choose."""
    bar = comfy.utils.ProgressBar(1)
    previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format)

    def progress(done: int, total: int, x0: torch.Tensor | None) -> None:
        preview = previewer.decode_latent_to_preview_image("JPEG", x0[-1:]) if previewer and x0 is not None else None
        bar.update_absolute(done, total, preview)

    return progress
