"""The comic strip: the frames as panels in reading order (left to right, then down), each with its sentence
under it. Pure module: torch and Pillow."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

GAP = 8
MAX_COLUMNS = 4


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without scalable default font
        return ImageFont.load_default()


def comic_strip(frames: torch.Tensor, sentences: Sequence[str], columns: int = 0) -> torch.Tensor:
    """IMAGE [1, H, W, 3]: ``frames`` [N, h, w, 3] as panels with ``sentences`` as captions."""
    n, h, w = frames.shape[:3]
    columns = columns or min(MAX_COLUMNS, n)
    rows = -(-n // columns)
    size = max(10, w // 14)
    font = _font(size)
    chars = max(8, int(w / (size * 0.55)))
    wrapped = [textwrap.wrap(s, chars)[:4] for s in sentences]
    text_h = (max((len(t) for t in wrapped), default=1) or 1) * (size + 3) + GAP
    sheet = Image.new("RGB", (columns * (w + GAP) + GAP, rows * (h + text_h + GAP) + GAP), "white")
    draw = ImageDraw.Draw(sheet)
    pixels = (frames[..., :3].clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    for i in range(n):
        x = GAP + (i % columns) * (w + GAP)
        y = GAP + (i // columns) * (h + text_h + GAP)
        sheet.paste(Image.fromarray(pixels[i]), (x, y))
        for j, line in enumerate(wrapped[i] if i < len(wrapped) else []):
            draw.text((x, y + h + 3 + j * (size + 3)), line, fill="black", font=font)
    return torch.from_numpy(np.asarray(sheet, dtype=np.float32) / 255.0)[None]
