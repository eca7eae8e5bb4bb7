"""Animated GIF output, the one common animation format core ComfyUI does not save (it has WEBP, PNG, video)."""

from __future__ import annotations

import json
import os

import folder_paths
import numpy as np
from comfy.cli_args import args
from PIL import Image


class SaveAnimatedGIF:
    DESCRIPTION = (
        "Saves an IMAGE batch as an animated GIF in the output folder. The graph (API prompt and UI workflow) is "
        "embedded in the GIF comment unless ComfyUI runs with --disable-metadata. For lossless output or other "
        "formats use core Save Animated WEBP / PNG."
    )
    CATEGORY = "laser-story/output"
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "Frames in order, e.g. the Morph Interpolator's frames."}),
                "filename_prefix": ("STRING", {"default": "laser-story/morph",
                                               "tooltip": "File name prefix; may contain a subfolder and %date:...% tokens."}),
                "fps": ("FLOAT", {"default": 10.0, "min": 0.1, "max": 100.0, "step": 0.1,
                                  "tooltip": "Frames per second (LASER's own animations play at 10)."}),
                "loop": ("INT", {"default": 0, "min": 0, "max": 1000, "tooltip": "Times to loop; 0 = forever."}),
                "pingpong": ("BOOLEAN", {"default": False, "tooltip": "Play forward then backward."}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    def save(self, images, filename_prefix, fps, loop, pingpong, prompt=None, extra_pnginfo=None):
        folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, folder_paths.get_output_directory(), images.shape[2], images.shape[1])
        frames = [Image.fromarray(np.clip(255.0 * image.cpu().numpy(), 0, 255).astype(np.uint8)) for image in images]
        if pingpong and len(frames) > 2:
            frames += frames[-2:0:-1]
        metadata = {}
        if not args.disable_metadata:
            metadata = {"prompt": prompt, **(extra_pnginfo or {})}
        name = f"{filename}_{counter:05}_.gif"
        frames[0].save(os.path.join(folder, name), save_all=True, append_images=frames[1:], duration=round(1000 / fps),
                       loop=loop, comment=json.dumps(metadata).encode() if metadata else b"", optimize=False)
        # Under its own key: this frontend shows an animated "images" entry that is not WEBP/PNG as a video, which
        # cannot play a GIF; the pack's web extension shows it as an <img> instead.
        return {"ui": {"gifs": [{"filename": name, "subfolder": subfolder, "type": "output"}]}}


NODE_CLASS_MAPPINGS = {"LaserStorySaveAnimatedGIF": SaveAnimatedGIF}
NODE_DISPLAY_NAME_MAPPINGS = {"LaserStorySaveAnimatedGIF": "Save Animated GIF"}
