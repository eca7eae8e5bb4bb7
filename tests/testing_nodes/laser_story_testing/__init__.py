"""Test-only ComfyUI pack: random-weight tiny SD1.x models and a node that hands values to the test.

Loaded next to laser-story by the test fixtures (in-process and over HTTP); never shipped to users.
"""

from __future__ import annotations

import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[3] / "src")  # the pack's own package, under the one name it has
if SRC not in sys.path:
    sys.path.insert(0, SRC)

from laser_story.tinyworld.model import TinySpec, build_clip, build_model, build_vae  # noqa: E402

CAPTURED: dict[str, object] = {}


class TinyRandomModel:
    """MODEL/CLIP/VAE with SD1.5 topology at tiny width and seeded random weights."""

    CATEGORY = "laser-story-testing"
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2**31})}}

    def load(self, seed: int):
        spec = TinySpec()
        return (build_model(spec, seed=seed), build_clip(spec, seed=seed + 1), build_vae(spec, seed=seed + 2))


class Capture:
    """Stores any input under a key so an in-process test can read the real Python value."""

    CATEGORY = "laser-story-testing"
    RETURN_TYPES = ()
    FUNCTION = "capture"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*", {}), "key": ("STRING", {"default": "out"})}}

    @classmethod
    def VALIDATE_INPUTS(cls, input_types=None, **_):
        return True

    def capture(self, value, key: str):
        CAPTURED[key] = value
        return {}


NODE_CLASS_MAPPINGS = {"LaserStoryTestTinyRandomModel": TinyRandomModel, "LaserStoryTestCapture": Capture}
