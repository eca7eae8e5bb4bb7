"""The story pipeline's nodes (StoryGPT-V): the Story LLM Mapper (story text -> plan -> per-frame conditioning),
the Char-LDM Sampler (one frame per sentence, consistent characters) and the character-fuser loader."""

from __future__ import annotations

import json
import os

import comfy.samplers
import folder_paths

from ..attention.story import StorySettings
from ..llm.backends import Sampling
from ..llm.planner import PlanRequest, text_problem
from ..llm.tasks import parse_plan
from ..llm.tasks.base import PlanError
from ..llm.tasks.morph import typed_plan
from ..story import fuser as fuser_file
from ..story.pipeline import PROMPT_STYLES, SampleOptions, StoryError, prepare, sample
from ..story.strip import comic_strip
from ..tinyworld import weights as tiny_weights
from . import FUSER_FOLDER
from ._progress import latent_progress
from ._types import CHAR_FUSER, LLM_CONFIG, PLAN, STORY
from .llm_planner import plan_in_node

CATEGORY = "laser-story/story"
MORPH_FRAMES = 6  # frames per LASER segment between two panels of an animated story


def split_names(text: str) -> list[str]:
    return [n.strip() for n in text.replace("\n", ",").split(",") if n.strip()]


class StoryLLMMapper:
    DESCRIPTION = (
        "Reads a story and resolves every he/she/they to a character registry (StoryGPT-V): one frame per sentence "
        "with its resolved text, who is present, where each one stands and the setting. Each frame's prompt carries "
        "the registry description of its characters, and with a fuser and an image encoder their reference images "
        "are fused into their name tokens. Without an LLM Config the rule-based planner is used; a plan pasted into "
        "plan_override is used as it is, so a shared workflow reproduces without any LLM."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = (STORY, PLAN["story"], "STRING", PLAN["morph"])
    RETURN_NAMES = ("story", "story_plan", "plan_json", "morph_plan")
    OUTPUT_TOOLTIPS = ("Per-frame conditioning for the Char-LDM Sampler.", "The story plan.",
                       "The plan as JSON (paste it into plan_override to pin it).",
                       "A morph plan through the frames' prompts (one LASER segment per pair of consecutive frames, "
                       "non-rigid control): with the first frame as image, the Morph Interpolator animates the "
                       "story.")  # fmt: skip
    OUTPUT_NODE = True
    FUNCTION = "map"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "clip": ("CLIP", {"tooltip": "Text encoder of the checkpoint the Char-LDM Sampler uses."}),
                "story": ("STRING", {"multiline": True, "default": "",
                                     "tooltip": "The story, several sentences; pronouns are fine."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "control_after_generate": False,
                                 "tooltip": "LLM sampling seed (part of the cache key)."}),
            },
            "optional": {
                "llm_config": (LLM_CONFIG, {"tooltip": "From an LLM Config node; without it the rule-based planner "
                                                        "resolves the story (no model)."}),
                "plan": (PLAN["story"], {"tooltip": "A story plan from the LLM Prompt Planner; used instead of planning "
                                                    "the story text."}),
                "plan_override": ("STRING", {"multiline": True, "default": "",
                                             "tooltip": "A story plan as JSON (e.g. plan_json, edited). When not empty "
                                                        "it is validated and used; no LLM is called."}),
                "reference_images": ("IMAGE", {"tooltip": "One image per character named in reference_names, in the "
                                                          "same order: each becomes its character's anchor."}),
                "reference_names": ("STRING", {"default": "", "tooltip": "Comma-separated character names, one per "
                                                                         "reference image."}),
                "prompt_style": (list(PROMPT_STYLES), {"default": "sentence", "tooltip": (
                    "sentence: each frame's resolved sentence, every character's description after its name; caption: "
                    "only who stands where in which setting, for models trained on captions (the Built-in Tiny "
                    "Model).")}),
                "clip_vision": ("CLIP_VISION", {"tooltip": "Image encoder for the fuser (the Built-in Tiny Model's "
                                                            "clip_vision, or the one the fuser was trained with)."}),
                "fuser": (CHAR_FUSER, {"tooltip": "A Char-LDM character fuser: fuses each reference image's feature "
                                                  "into its character's name tokens."}),
            },
        }  # fmt: skip

    @classmethod
    def VALIDATE_INPUTS(cls, story=None, plan_override=None, reference_names=None, **_):
        override = (plan_override or "").strip()
        if override:
            try:
                parse_plan(override, "plan_override", "story")
            except PlanError as exc:
                return str(exc)
            return True
        if story is not None and not story.strip():
            return ("story is empty: write the story (several sentences), connect a story plan, or paste one into "
                    "plan_override")
        if story is not None and text_problem(story):
            return text_problem(story)
        return True

    def map(self, clip, story, seed, llm_config=None, plan=None, plan_override="", reference_images=None,
            reference_names="", clip_vision=None, fuser=None, prompt_style="sentence"):
        notes = []
        if plan_override.strip():
            story_plan = parse_plan(plan_override, "plan_override", "story")
        elif plan is not None:
            story_plan = parse_plan(plan, "plan", "story")
        else:
            result = plan_in_node(PlanRequest(task="story", text=story, sampling=Sampling(seed=seed)), llm_config)
            story_plan, notes = result.plan, list(result.warnings)
        names = split_names(reference_names)
        count = 0 if reference_images is None else reference_images.shape[0]
        if len(names) != count:
            raise StoryError(f"reference_names: {len(names)} name(s) ({', '.join(names) or 'none'}) for {count} "
                             f"reference image(s); give one name per image, in order")
        references = {n: reference_images[i] for i, n in enumerate(names)}
        if fuser is not None and clip_vision is None and references:
            notes.append("a fuser without clip_vision: reference images are used as anchors only, not fused")
        mapped = prepare(story_plan, clip, references, clip_vision, fuser, prompt_style)
        data = story_plan.to_json()
        text = json.dumps(data, indent=2, ensure_ascii=False)
        flags = [f"frame {f.index + 1}: {n}" for f in mapped.frames for n in f.notes]
        shown = [*(f"WARNING: {w}" for w in notes), *(f"NOTE: {f}" for f in flags), text]
        prompts = [f.prompt for f in mapped.frames]
        morph = typed_plan("\n".join(prompts if len(prompts) > 1 else prompts * 2), "", "", MORPH_FRAMES).to_json()
        return {"ui": {"text": shown}, "result": (mapped, data, text, morph)}


class CharLDMSampler:
    DESCRIPTION = (
        "Draws one frame per sentence of a mapped story so each character looks the same in every frame, stands "
        "where its sentence puts it, and nobody appears who is not there (StoryGPT-V's Char-LDM, on any SD1.x "
        "MODEL). Three switchable mechanisms: a character's tokens held to its region (cross-attention), its "
        "features shared from its first frame or reference image (consistent self-attention), and fused "
        "character embeddings (with a fuser in the mapper). Frames are sampled a few at a time with a bounded "
        "consistency context, so long stories run at flat memory."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "IMAGE", "STRING")
    RETURN_NAMES = ("frames", "comic_strip", "frame_info")
    OUTPUT_TOOLTIPS = ("One image per sentence, in order.", "The frames as panels in reading order, each with its "
                       "sentence.", "JSON: per frame the sentence, prompt, characters, places and regions, anchors, "
                       "and notes such as unresolved pronouns.")  # fmt: skip
    FUNCTION = "draw"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "An SD1.x MODEL (or the Built-in Tiny Model)."}),
                "clip": ("CLIP", {"tooltip": "Text encoder of the same checkpoint (for the negative prompt)."}),
                "vae": ("VAE", {"tooltip": "VAE of the same checkpoint."}),
                "story": (STORY, {"tooltip": "From the Story LLM Mapper."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                                 "tooltip": "Noise seed of frame 1; frame i uses seed + i - 1."}),
                "steps": ("INT", {"default": 20, "min": 1, "max": 200, "tooltip": "Sampling steps per frame."}),
                "cfg": ("FLOAT", {"default": 5.0, "min": 1.0, "max": 30.0, "step": 0.1, "tooltip": "Guidance scale."}),
                "sampler_name": (comfy.samplers.SAMPLER_NAMES, {"default": "euler", "tooltip": "Sampler."}),
                "scheduler": (comfy.samplers.SCHEDULER_NAMES, {"default": "normal", "tooltip": "Noise schedule."}),
                "width": ("INT", {"default": 512, "min": 64, "max": 2048, "step": 8,
                                  "tooltip": "Frame width (128 for the Built-in Tiny Model)."}),
                "height": ("INT", {"default": 512, "min": 64, "max": 2048, "step": 8, "tooltip": "Frame height."}),
                "frames_per_batch": ("INT", {"default": 4, "min": 1, "max": 64,
                                             "tooltip": "Frames sampled together; memory grows with this, not with "
                                                        "the story's length."}),
                "hold_regions": ("BOOLEAN", {"default": True, "tooltip": "Keep each character's tokens to its region "
                                                                         "and out of the others' (cross-attention)."}),
                "consistent_attention": ("BOOLEAN", {"default": True,
                                                     "tooltip": "Each frame's characters also attend to their features "
                                                                "in their first frame or reference image."}),
                "fuse_characters": ("BOOLEAN", {"default": True, "tooltip": "Use the fused character embeddings when "
                                                                            "the mapper made them (it needs a fuser)."}),
                "fuse_from": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05,
                                        "tooltip": "Fraction of the steps on plain text before the fused embeddings "
                                                   "take over (StoryGPT-V: 0.5)."}),
            },
            "optional": {"negative": ("STRING", {"default": "", "multiline": True, "tooltip": "Negative prompt."})},
        }  # fmt: skip

    def draw(self, model, clip, vae, story, seed, steps, cfg, sampler_name, scheduler, width, height, frames_per_batch,
             hold_regions, consistent_attention, fuse_characters, fuse_from, negative=""):
        options = SampleOptions(steps=steps, cfg=cfg, sampler=sampler_name, scheduler=scheduler, seed=seed, width=width,
                                height=height, batch=frames_per_batch, fuse=fuse_characters, fuse_from=fuse_from,
                                attention=StorySettings(hold=hold_regions, consistency=consistent_attention),
                                negative=negative)  # fmt: skip
        frames, info = sample(model, clip, vae, story, options, latent_progress(model))
        strip = comic_strip(frames, [f.sentence for f in story.frames])
        text = json.dumps({"frames": info}, indent=2, ensure_ascii=False)
        return {"ui": {"text": [text]}, "result": (frames, strip, text)}


class CharFuserLoader:
    DESCRIPTION = (
        "Loads a Char-LDM character fuser (StoryGPT-V / FastComposer's postfuse module) from models/char_fuser: this "
        "pack's .safetensors, or a FastComposer / StoryGPT-V checkpoint's tensors. Sizes are read from the file; "
        "the Story LLM Mapper checks them against its CLIP and CLIP_VISION."
    )
    CATEGORY = "laser-story/loaders"
    RETURN_TYPES = (CHAR_FUSER,)
    RETURN_NAMES = ("fuser",)
    OUTPUT_TOOLTIPS = ("The character fuser.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"fuser_name": (sorted(_fuser_files()), {
            "tooltip": "A fuser file in models/char_fuser, or one the pack's Char-LDM trainer wrote beside its model."})}}

    @classmethod
    def VALIDATE_INPUTS(cls, fuser_name):
        if fuser_name not in _fuser_files():
            return (f"fuser_name: {fuser_name!r} is not in models/{FUSER_FOLDER} nor in the pack's weights folder; put "
                    "the file there and refresh")
        return True

    def load(self, fuser_name):
        return (fuser_file.load(_fuser_files()[fuser_name])[0],)


def _fuser_files() -> dict[str, str]:
    """Fuser name -> path: models/char_fuser, then the pack's weights folder (``*-fuser.safetensors``)."""
    found = {name: os.path.abspath(folder_paths.get_full_path(FUSER_FOLDER, name))
             for name in folder_paths.get_filename_list(FUSER_FOLDER)}  # fmt: skip
    for name in sorted(os.listdir(tiny_weights.WEIGHTS_DIR)):
        if name.endswith(fuser_file.FILE_SUFFIX):
            found.setdefault(name, os.path.join(tiny_weights.WEIGHTS_DIR, name))
    return found


NODE_CLASS_MAPPINGS = {"LaserStoryStoryMapper": StoryLLMMapper, "LaserStoryCharLDMSampler": CharLDMSampler,
                       "LaserStoryCharFuserLoader": CharFuserLoader}  # fmt: skip
NODE_DISPLAY_NAME_MAPPINGS = {"LaserStoryStoryMapper": "Story LLM Mapper", "LaserStoryCharLDMSampler": "Char-LDM Sampler",
                              "LaserStoryCharFuserLoader": "Char-LDM Fuser Loader"}  # fmt: skip
