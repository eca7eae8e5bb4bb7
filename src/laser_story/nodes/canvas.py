"""The canvas pipeline's nodes: the Local Caption Expander (grows an image in any direction from an expand plan,
arXiv 2407.12642; tuning-free on any SD1.x MODEL) and the loader of the built-in expansion model (the trained
path)."""

from __future__ import annotations

import json
import os

import comfy.samplers
import comfy.utils
import torch
from PIL import Image

from ..canvas import geometry
from ..canvas.expand import CONDITIONING_MODES, Settings, expand
from ..llm.tasks.expand import parse_expand_plan
from ..tinyworld import expansion
from ..tinyworld import weights as tiny_weights
from ._images import fit_to_multiple_of_8
from ._types import PLAN

PREVIEW_SIDE = 512


def _preview(canvas: torch.Tensor) -> tuple[str, Image.Image, int]:
    array = (canvas.clamp(0, 1).numpy() * 255 + 0.5).astype("uint8")
    return ("JPEG", Image.fromarray(array[..., :3]), PREVIEW_SIDE)


class LocalCaptionExpander:
    DESCRIPTION = (
        "Grows an image step by step in any of four directions (LLM-guided infinite canvas, arXiv 2407.12642). Each "
        "step samples one window: the new strip plus the nearest canvas as context, so a step costs the same however "
        "large the canvas has grown. The plan's global caption covers the window and the step's local caption is held "
        "to the new strip; the known side stays fixed (latent noise mask), the strip starts from a continuation of "
        "the edge, and an overlap band is regenerated and blended, colour-matched to the context."
    )
    CATEGORY = "laser-story/canvas"
    RETURN_TYPES = ("IMAGE", "LATENT", "MASK", "STRING")
    RETURN_NAMES = ("canvas", "latent", "generated_mask", "step_info")
    OUTPUT_TOOLTIPS = (
        "The grown canvas.",
        "The canvas encoded by the VAE (for a further img2img pass).",
        "How much of each canvas pixel was generated: 1 on new strips, a ramp across the overlap bands, 0 where the "
        "input is kept as it was.",
        "JSON: per step the direction, local caption, the window sampled and the new strip (pixels).",
    )
    FUNCTION = "grow"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "An SD1.x/SD2.x MODEL (or the Built-in Tiny Model)."}),
                "clip": ("CLIP", {"tooltip": "Text encoder of the same checkpoint."}),
                "vae": ("VAE", {"tooltip": "VAE of the same checkpoint."}),
                "image": ("IMAGE", {"tooltip": "The starting image; its first image is grown."}),
                "plan": (PLAN["expand"], {"tooltip": "An expand plan from the LLM Prompt Planner (task 'expand'): the "
                                                     "global caption and one direction + local caption per step."}),
                "window": ("INT", {"default": 512, "min": 64, "max": 2048, "step": 8,
                                   "tooltip": "Side of the window sampled per step along the growth axis: the model's "
                                              "native size (512 for SD1.5, 128 for the Built-in Tiny Model)."}),
                "step": ("INT", {"default": 256, "min": 8, "max": 2048, "step": 8,
                                 "tooltip": "Pixels the canvas grows per step (at most the window; half the window "
                                            "leaves half of it as context)."}),
                "overlap": ("INT", {"default": 32, "min": 0, "max": 512, "step": 8,
                                    "tooltip": "Pixels of the known side next to the seam that are regenerated and "
                                               "blended in (hides the seam); 0 keeps every known pixel."}),
                "steps": ("INT", {"default": 20, "min": 1, "max": 200, "tooltip": "Sampling steps per expansion step."}),
                "cfg": ("FLOAT", {"default": 7.0, "min": 1.0, "max": 30.0, "step": 0.1, "tooltip": "Guidance scale."}),
                "sampler_name": (comfy.samplers.SAMPLER_NAMES, {"default": "euler", "tooltip": "Sampler."}),
                "scheduler": (comfy.samplers.SCHEDULER_NAMES, {"default": "normal", "tooltip": "Noise schedule."}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.05, "max": 1.0, "step": 0.01,
                                      "tooltip": "1.0 draws the new strip from noise; lower keeps more of its pre-fill "
                                                 "(the continued edge)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                                 "tooltip": "Noise seed of the first step (step i uses seed + i)."}),
                "conditioning": (list(CONDITIONING_MODES), {
                    "default": "regional",
                    "tooltip": "How the captions reach the model: regional = global caption over the window, local "
                               "caption held to the new strip (conditioning area); concat = both in one prompt; "
                               "global only / local only = one of them (for comparison)."}),
                "colour_match": ("BOOLEAN", {"default": True, "tooltip": "Shift the new pixels' colours to match the "
                                                                         "canvas next to the seam."}),
            },
            "optional": {
                "negative": ("STRING", {"default": "", "multiline": True, "tooltip": "Negative prompt for every step."}),
                "clip_vision": ("CLIP_VISION", {"tooltip": "With the built-in expansion model: the image encoder (the "
                                                          "Built-in Tiny Model's clip_vision) that gives its visual "
                                                          "feature. Ignored by other models."}),
                "global_image": ("IMAGE", {"tooltip": "With the built-in expansion model: an image of the whole scene "
                                                      "(e.g. generated from the global caption) for the visual feature; "
                                                      "without it, the canvas so far is used."}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, window=None, step=None, overlap=None, **_):
        if isinstance(window, int) and isinstance(step, int):
            for name, value in (("window", window), ("step", step)):
                if value % geometry.LATENT_FACTOR:
                    return f"{name}: {value} is not a multiple of 8; use {value // 8 * 8 or 8}"
            if step > window:
                return (f"step: {step} px is larger than the window ({window} px); each step needs the new strip and "
                        f"some canvas as context in one window; use at most {window} (half is typical)")
            if isinstance(overlap, int) and overlap > window - step:
                return (f"overlap: {overlap} px is more than the context left in the window ({window} - {step} = "
                        f"{window - step} px); use at most {window - step}")
        return True

    def grow(self, model, clip, vae, image, plan, window, step, overlap, steps, cfg, sampler_name, scheduler, denoise,
             seed, conditioning, colour_match, negative="", clip_vision=None, global_image=None):
        expand_plan = parse_expand_plan(plan, what="plan")
        start, note = fit_to_multiple_of_8(image[:1], "Local Caption Expander")
        settings = Settings(window=window, step=step, overlap=overlap, steps=steps, cfg=cfg, sampler=sampler_name,
                            scheduler=scheduler, denoise=denoise, seed=seed, conditioning=conditioning,
                            colour_match=colour_match)
        pbar = comfy.utils.ProgressBar(len(expand_plan.steps))
        result = expand(model, clip, vae, start[0, ..., :3], expand_plan.global_caption,
                        [(s.direction, s.caption) for s in expand_plan.steps], settings, negative,
                        progress=lambda done, total, canvas: pbar.update_absolute(done, total, _preview(canvas)),
                        clip_vision=clip_vision, global_image=None if global_image is None else global_image[0])
        canvas = result.canvas[None]
        latent = vae.encode(canvas)
        info = json.dumps({"global_caption": expand_plan.global_caption, "notes": [note] if note else [],
                           "steps": result.info}, indent=2)
        return {"ui": {"text": [info]}, "result": (canvas, {"samples": latent}, result.generated[None], info)}


class TinyExpansionModel:
    DESCRIPTION = (
        "Loads the built-in expansion model: the Built-in Tiny Model (128x128) trained to outpaint as arXiv "
        "2407.12642 trains its own, on wide world scenes with a global caption, a local caption per window and the "
        "image encoder's feature of the whole scene. An inpainting-shaped MODEL; use it in the Local Caption Expander "
        "with the Built-in Tiny Model's CLIP, VAE and clip_vision (window 128, step 64)."
    )
    CATEGORY = "laser-story/loaders"
    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("expansion_model",)
    OUTPUT_TOOLTIPS = ("The expansion MODEL (9-channel inpainting UNet with its visual projection attached).",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        names = sorted(set(tiny_weights.files_of_kind(expansion.KIND)) | {os.path.basename(expansion.DEFAULT_FILE)})
        return {"required": {"weights": (names, {"default": os.path.basename(expansion.DEFAULT_FILE),
                                                 "tooltip": "An expansion-model file in the pack's weights folder."})}}

    @classmethod
    def VALIDATE_INPUTS(cls, weights):
        problem = expansion.check(os.path.join(tiny_weights.WEIGHTS_DIR, os.path.basename(weights)))
        return True if problem is None else f"weights: {problem}"

    def load(self, weights):
        model, _meta = expansion.load(os.path.join(tiny_weights.WEIGHTS_DIR, os.path.basename(weights)))
        return (model,)


NODE_CLASS_MAPPINGS = {"LaserStoryLocalCaptionExpander": LocalCaptionExpander, "LaserStoryTinyExpansionModel": TinyExpansionModel}
NODE_DISPLAY_NAME_MAPPINGS = {"LaserStoryLocalCaptionExpander": "Local Caption Expander",
                              "LaserStoryTinyExpansionModel": "Built-in Expansion Model"}
