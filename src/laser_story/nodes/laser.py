"""LASER nodes: the Attention Injector (MODEL -> patched MODEL) and the Morph Interpolator (plan -> frames)."""

from __future__ import annotations

import comfy.latent_formats
import comfy.samplers
from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

from .. import controls as control_codes
from ..attention.laser import ControlSettings, apply_injector
from ..attention.morph import run_morph
from ..attention.sampling import Embedding
from ..llm.tasks.base import PlanError
from ..llm.tasks.morph import parse_morph_plan, typed_plan
from ._images import fit_to_multiple_of_8
from ._progress import latent_progress
from ._types import PLAN

CATEGORY = "laser-story/laser"
SUPPORTED_FAMILIES = "SD1.x and SD2.x UNet models (SD1.5, SD2.1 and fine-tunes of them)"


def require_sd_unet(model, input_name: str = "model") -> None:
    """LASER's layer and block numbering is that of the SD1.x/SD2.x UNet; refuse anything else early."""
    base = model.model
    if not isinstance(getattr(base, "diffusion_model", None), UNetModel) or not isinstance(base.latent_format, comfy.latent_formats.SD15):
        family = type(getattr(base, "model_config", base)).__name__
        raise ValueError(
            f"{input_name}: LASER supports {SUPPORTED_FAMILIES}; this MODEL is {family}. "
            "Load an SD1.x/SD2.x checkpoint (or the Built-in Tiny Model) instead."
        )


SETTING_INPUTS = {
    "f_t": ("FLOAT", {"default": 0.8, "min": 0.0, "max": 1.0, "step": 0.01,
                      "tooltip": "Control '0'/'2': inject the source's ResBlock features for this fraction of the first steps (Plug-and-Play default 0.8)."}),
    "qk_t": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01,
                       "tooltip": "Control '0': inject the source's self-attention queries and keys for this fraction of the first steps (Plug-and-Play default 0.5)."}),
    "kv_t": ("FLOAT", {"default": 0.08, "min": 0.0, "max": 1.0, "step": 0.01,
                       "tooltip": "Control '1'/'2': inject the source's self-attention keys and values from this fraction of the steps on (MasaCtrl: step 4 of 50 = 0.08)."}),
    "qk_start_layer": ("INT", {"default": 8, "min": 0, "max": 64,
                               "tooltip": "First self-attention layer (SD1.5 numbering: 0-5 encoder, 6 middle, 7-15 decoder) that receives Q/K. Plug-and-Play uses 8-15."}),
    "kv_start_layer": ("INT", {"default": 10, "min": 0, "max": 64,
                               "tooltip": "First self-attention layer that reads the source's K/V (MasaCtrl default 10 of 16)."}),
    "conv_output_block": ("INT", {"default": 4, "min": 0, "max": 11,
                                  "tooltip": "Output block whose ResBlock features are injected (Plug-and-Play: up_blocks[1].resnets[1] = output block 4)."}),
    "store_fp16": ("BOOLEAN", {"default": True,
                               "tooltip": "Keep the banked source features in float16: half the memory, differences far below visible."}),
}


class LaserAttentionInjector:
    DESCRIPTION = (
        "Adds LASER's attention and feature injection to a MODEL (a patched copy; the input MODEL is not changed). "
        "The patches stay inactive in ordinary samplers and act inside the Morph Interpolator, which feeds them the "
        "features banked while inverting each keyframe. Stacks with other packs' attention patches."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The MODEL with LASER control attached; connect it to the Morph Interpolator.",)
    FUNCTION = "patch"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {"tooltip": "An SD1.x/SD2.x MODEL."}), **SETTING_INPUTS}}

    def patch(self, model, **settings):
        require_sd_unet(model)
        return (apply_injector(model, ControlSettings(**settings)),)


def _encode(clip, text: str) -> Embedding:
    tokens, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
    return Embedding(tokens, pooled)


FRAME_NEGATIVES = ["source", "fade"]
FRAME_SPACINGS = ["linear", "even"]


class MorphInterpolator:
    DESCRIPTION = (
        "LASER text-conditioned image-to-animation. For each segment Pi -> Pi+1 the keyframe is DDIM-inverted once "
        "(its features banked), then all frames of the segment are sampled in one batch from that same noise with "
        "linearly interpolated prompt embeddings, the source prompt as negative, and the segment's control injected. "
        "The last frame seeds the next segment. Without an image, P0 is generated first."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "LATENT", "STRING")
    RETURN_NAMES = ("frames", "latents", "frame_info")
    OUTPUT_TOOLTIPS = (
        "All frames in order; feed them to Save Animated WEBP or an animation saver.",
        "The frames' latents.",
        "One line per frame: segment, control, alpha and prompts.",
    )
    FUNCTION = "morph"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "SD1.x/SD2.x MODEL, optionally through the LASER Attention Injector for custom control settings."}),
                "clip": ("CLIP", {"tooltip": "Text encoder of the same checkpoint."}),
                "vae": ("VAE", {"tooltip": "VAE of the same checkpoint (encodes the keyframe, decodes the frames)."}),
                "frames_per_segment": ("INT", {"default": 0, "min": 0, "max": 128,
                                               "tooltip": "Frames per segment, endpoints included; 0 = the plan's value (8 for typed prompts)."}),
                "steps": ("INT", {"default": 50, "min": 1, "max": 200, "tooltip": "DDIM steps for the inversion and for every frame (Plug-and-Play and MasaCtrl use 50; fewer steps make a coarser inversion that other prompts drift away from)."}),
                "cfg": ("FLOAT", {"default": 7.5, "min": 1.0, "max": 30.0, "step": 0.1,
                                  "tooltip": "Guidance scale; the segment's source prompt is the negative."}),
                "scheduler": (comfy.samplers.SCHEDULER_NAMES, {"default": "ddim_uniform", "tooltip": "Noise schedule shared by inversion and sampling."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                                 "tooltip": "Noise seed for generating P0 when no image is given (frames themselves are deterministic)."}),
                "width": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 8, "tooltip": "Width of a generated P0 (ignored with an image)."}),
                "height": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 8, "tooltip": "Height of a generated P0 (ignored with an image)."}),
            },
            "optional": {
                "plan": (PLAN["morph"], {"tooltip": "A morph plan from the LLM Prompt Planner (its morph_plan output); overrides the typed prompts."}),
                "image": ("IMAGE", {"tooltip": "The keyframe P0 describes; its first image is used. Without it P0 is generated."}),
                "prompts": ("STRING", {"multiline": True, "default": "",
                                       "tooltip": "Without a plan: keyframe prompts P0..Pn, one per line."}),
                "controls": ("STRING", {"default": "", "tooltip": "Without a plan: one code per segment, comma separated (empty = 1 for every segment). "
                                        + "; ".join(f"{k} = {v}" for k, v in control_codes.MEANINGS.items())}),
                "negative": ("STRING", {"default": "", "tooltip": "Without a plan: negative prompt used when generating P0."}),
                "frame_negative": (FRAME_NEGATIVES, {"default": "source", "tooltip": "The frames' negative. source: the "
                                   "segment's source prompt on every frame (LASER). fade: from the source prompt on the "
                                   "first frame to the plan's negative on the last, so later frames are not pushed away "
                                   "from what should stay (on the built-in model: more kept and more of the target)."}),
                "frame_spacing": (FRAME_SPACINGS, {"default": "linear", "tooltip": "The frames' interpolation weights. "
                                  "linear: evenly spaced weights (LASER). even: the frames are sampled a second time at "
                                  "weights spaced evenly along the path the first ones traced, and the evenest-stepping "
                                  "of both kept, so a change that holds and then flips gets frames near the flip "
                                  "(about 1.6-1.8x the time on the built-in model)."}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, frames_per_segment=None, prompts=None, controls=None, negative=None, **_):
        if frames_per_segment == 1:
            return "frames_per_segment: a segment needs at least 2 frames (its two keyframes); use 2 or more, or 0 for the plan's value."
        if prompts and prompts.strip():
            try:
                typed_plan(prompts, controls or "", negative or "", 8)
            except PlanError as err:
                return str(err)
        return True

    def morph(self, model, clip, vae, frames_per_segment, steps, cfg, scheduler, seed, width, height,
              plan=None, image=None, prompts="", controls="", negative="", frame_negative="source", frame_spacing="linear"):
        require_sd_unet(model)
        if plan is not None:
            morph_plan = parse_morph_plan(plan, what="plan")
        elif prompts.strip():
            morph_plan = typed_plan(prompts, controls, negative, frames_per_segment or 8)
        else:
            raise ValueError("plan/prompts: connect a morph plan from the LLM Prompt Planner or type keyframe prompts, one per line.")
        frames = frames_per_segment or morph_plan.frames_per_segment
        notes = []
        keyframe = None
        if image is not None:
            fitted, note = fit_to_multiple_of_8(image[:1], "Morph Interpolator")
            notes += [note] if note else []
            keyframe = vae.encode(fitted[:, :, :, :3])
        embeddings = [_encode(clip, p) for p in morph_plan.prompts]
        negative_embedding = _encode(clip, morph_plan.negative)
        progress = latent_progress(model)
        fade = frame_negative == "fade"
        result = run_morph(model, embeddings, negative_embedding, list(morph_plan.controls), keyframe, frames, steps, cfg,
                           scheduler, seed, (1, 4, height // 8, width // 8), list(morph_plan.prompts), progress,
                           frame_negative=negative_embedding if fade else None, fade_negative=fade,
                           even_spacing=frame_spacing == "even")
        images = vae.decode(result.latents)
        info = "\n".join(notes + result.frame_info)
        return {"ui": {"text": [info]}, "result": (images, {"samples": result.latents}, info)}


NODE_CLASS_MAPPINGS = {
    "LaserStoryAttentionInjector": LaserAttentionInjector,
    "LaserStoryMorphInterpolator": MorphInterpolator,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LaserStoryAttentionInjector": "LASER Attention Injector",
    "LaserStoryMorphInterpolator": "Morph Interpolator",
}
