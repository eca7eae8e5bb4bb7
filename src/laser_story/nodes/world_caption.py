"""Built-in Image Caption: what an image of the built-in world shows, as a caption (P0 of an image-to-animation)."""

from __future__ import annotations

import numpy as np

from ..tinyworld import judge

CATEGORY = "laser-story/loaders"


class LaserStoryWorldCaption:
    DESCRIPTION = (
        "Reads an image of the built-in tiny model's world (coloured shapes on a background) and writes its caption: "
        "each object's size, colour, shape and place, and the background, e.g. 'a large red star on the left on a grey "
        "background'. Connect it to the LLM Prompt Planner's caption input so a morph's P0 describes the very image "
        "the Morph Interpolator animates. It reads only that world: for other images, type the caption or use any "
        "captioning node's text output."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("caption",)
    OUTPUT_TOOLTIPS = ("The first image's caption, in the words the built-in model was trained on.",)
    FUNCTION = "caption"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE", {"tooltip": "An image of the built-in world (its first image is read)."})}}

    def caption(self, image):
        pixels = (image[0, :, :, :3].clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        text = judge.caption_of(pixels)
        return {"ui": {"text": [text]}, "result": (text,)}


NODE_CLASS_MAPPINGS = {"LaserStoryWorldCaption": LaserStoryWorldCaption}
NODE_DISPLAY_NAME_MAPPINGS = {"LaserStoryWorldCaption": "Built-in Image Caption"}
