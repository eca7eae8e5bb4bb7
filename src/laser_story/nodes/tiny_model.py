"""Built-in Tiny Model: the pack's own small SD1.x-architecture MODEL, CLIP and VAE (no download)."""

from __future__ import annotations

import os

from ..tinyworld import encoder as tiny_encoder
from ..tinyworld import weights as tiny_weights

CATEGORY = "laser-story/loaders"
_CACHE: dict[tuple, tuple] = {}


def _choices() -> list[str]:
    """The weights files of the tiny-model kind (other models' files in the folder are not offered)."""
    names = set(tiny_weights.files_of_kind(tiny_weights.KIND))
    names.add(os.path.basename(tiny_weights.DEFAULT_WEIGHTS))  # listed even when missing: the error says how to rebuild it
    return sorted(names)


class LaserStoryTinyModel:
    DESCRIPTION = (
        "Loads the pack's built-in tiny text-to-image model: an SD1.5-topology UNet (ComfyUI's own UNetModel, so every "
        "ComfyUI patch and the LASER injector apply unchanged), a tiny CLIP text encoder over the real SD1 tokenizer and "
        "a tiny VAE, trained on a procedural world of 1-3 coloured shapes (circle, square, triangle, star, cross, heart; "
        "red, orange, yellow, green, blue, purple, white, black; small/medium/large; 3x3 positions; grey, sand, sky or "
        "striped background) and a cast of named characters (Pip, a small red star; Bo, a large blue circle; ...). "
        "Generates 128x128 images (64x64 with tinyworld.safetensors) in seconds on a CPU; no network, no Stable Diffusion weights needed. Words outside that "
        "world still encode but are ignored. Also gives the built-in image encoder (CLIP_VISION), trained on the same "
        "world against this text encoder."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL", "CLIP", "VAE", "CLIP_VISION")
    RETURN_NAMES = ("model", "clip", "vae", "clip_vision")
    OUTPUT_TOOLTIPS = (
        "The tiny SD1.x UNet (eps prediction, SD1.5 latent format); sample 128x128 images (a 16x16 latent; 64x64 with "
        "tinyworld.safetensors) with any sampler.",
        "The tiny text encoder; encode prompts with CLIP Text Encode.",
        "The tiny VAE (downscale 8, 4 latent channels).",
        "The built-in image encoder (a small ViT as ComfyUI's CLIP vision model, trained against this text encoder); "
        "use it with CLIP Vision Encode.",
    )
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "weights": (_choices(), {
                    "default": os.path.basename(tiny_weights.DEFAULT_WEIGHTS),
                    "tooltip": "A tiny-model weights file in the pack's src/laser_story/tinyworld/weights folder (files of "
                               "other kinds are not listed). tinyworld-128.safetensors (default) is trained at 128x128; "
                               "tinyworld.safetensors is the 64x64 model it was grown from: coarser, about 3x faster.",
                }),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, weights):
        problem = tiny_weights.check(_path(weights))
        return True if problem is None else f"weights: {problem}"

    def load(self, weights):
        path = _path(weights)
        key = tuple(_stamp(p) for p in (path, tiny_encoder.DEFAULT_ENCODER))
        if key not in _CACHE:
            model, clip, vae, _meta = tiny_weights.load(path)  # a missing or corrupt file raises with the rebuild command
            clip_vision, _head, _encoder_meta = tiny_encoder.load()
            _CACHE.clear()  # one model at a time: a rebuilt file replaces the old one
            _CACHE[key] = (model, clip, vae, clip_vision)
        return _CACHE[key]


def _stamp(path: str) -> tuple:
    st = os.stat(path) if os.path.isfile(path) else None
    return (path, st.st_mtime_ns, st.st_size) if st else (path,)


def _path(name: str) -> str:
    return os.path.join(tiny_weights.WEIGHTS_DIR, os.path.basename(name))


NODE_CLASS_MAPPINGS = {"LaserStoryTinyModel": LaserStoryTinyModel}
NODE_DISPLAY_NAME_MAPPINGS = {"LaserStoryTinyModel": "Built-in Tiny Model"}
