"""The Local Caption Expander in a real ComfyUI graph on the built-in model (64x64 weights: a 64-pixel window)."""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.host

TINY_64 = ("LaserStoryTinyModel", {"weights": "tinyworld.safetensors"})


def expand_graph(directions: str = "right, up", plan_override: str = "", **settings) -> dict:
    inputs = {"window": 64, "step": 32, "overlap": 8, "steps": 4, "cfg": 5.0, "sampler_name": "euler",
              "scheduler": "normal", "denoise": 1.0, "seed": 3, "conditioning": "regional", "colour_match": True,
              **settings}
    return {
        "1": {"class_type": TINY_64[0], "inputs": TINY_64[1]},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0x808080}},
        "3": {"class_type": "LaserStoryLLMPlanner", "inputs": {
            "task": "expand", "text": "a grey scene with a red star and a blue circle", "temperature": 0.2, "seed": 0,
            "max_tokens": 256, "image_caption": "a grey scene", "directions": directions, "plan_override": plan_override}},
        "4": {"class_type": "LaserStoryLocalCaptionExpander", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "image": ["2", 0], "plan": ["3", 2], **inputs}},
        "5": {"class_type": "LaserStoryTestCapture", "inputs": {"value": ["4", 0], "key": "canvas"}},
        "6": {"class_type": "LaserStoryTestCapture", "inputs": {"value": ["4", 2], "key": "mask"}},
        "7": {"class_type": "LaserStoryTestCapture", "inputs": {"value": ["4", 3], "key": "info"}},
        "8": {"class_type": "LaserStoryTestCapture", "inputs": {"value": ["4", 1], "key": "latent"}},
        "9": {"class_type": "LaserStoryTestCapture", "inputs": {"value": ["3", 1], "key": "plan_json"}},
    }  # fmt: skip


def test_expansion_grows_right_then_up_and_keeps_the_known_pixels(comfy_host):
    comfy_host.run(expand_graph())
    canvas, mask = comfy_host.captured["canvas"], comfy_host.captured["mask"]
    assert tuple(canvas.shape) == (1, 96, 96, 3) and tuple(mask.shape) == (1, 96, 96)
    assert tuple(comfy_host.captured["latent"]["samples"].shape) == (1, 4, 12, 12)
    original = canvas[0, 32:, :64]  # the input sits bottom-left after growing right and up
    kept = mask[0, 32:, :64] == 0
    assert torch.equal(original[kept], torch.full_like(original[kept], 0x80 / 255.0))
    assert bool((mask[0, :32] == 1).all()) and bool((mask[0, 32:, 64:] == 1).all())
    info = json.loads(comfy_host.captured["info"])
    assert [s["direction"] for s in info["steps"]] == ["right", "up"]
    assert info["steps"][1]["window"] == {"top": 0, "left": 0, "height": 64, "width": 96}
    assert all(s["caption"] for s in info["steps"]) and info["global_caption"]


def test_the_plan_override_reproduces_a_canvas_bit_for_bit(comfy_host):
    comfy_host.run(expand_graph(directions="left"))
    first, plan = comfy_host.captured["canvas"].clone(), comfy_host.captured["plan_json"]
    comfy_host.run(expand_graph(directions="down", plan_override=plan))
    assert json.loads(comfy_host.captured["info"])["steps"][0]["direction"] == "left", "the override wins"
    assert torch.equal(comfy_host.captured["canvas"], first)


@pytest.mark.parametrize("mode", ["concat", "global only", "local only"])
def test_every_conditioning_mode_runs(comfy_host, mode):
    comfy_host.run(expand_graph(directions="down", conditioning=mode, colour_match=False, overlap=0))
    assert tuple(comfy_host.captured["canvas"].shape) == (1, 96, 64, 3)


def test_bad_settings_name_the_input_and_the_fix(comfy_host):
    node = comfy_host.nodes.NODE_CLASS_MAPPINGS["LaserStoryLocalCaptionExpander"]
    assert node.VALIDATE_INPUTS(window=64, step=96, overlap=0).startswith("step: 96 px is larger than the window (64 px)")
    assert node.VALIDATE_INPUTS(window=64, step=36, overlap=0).startswith("step: 36 is not a multiple of 8; use 32")
    assert node.VALIDATE_INPUTS(window=64, step=48, overlap=32).startswith("overlap: 32 px is more than the context")
    assert node.VALIDATE_INPUTS(window=64, step=32, overlap=8) is True


def test_an_inpainting_model_gets_the_masked_window_and_the_mask(comfy_host):
    """On a 9-channel (SD1.5-inpainting-shaped) MODEL each step also feeds ComfyUI's inpaint inputs, as core
    InpaintModelConditioning does; the known pixels stay exactly as they were."""
    from laser_story.canvas.expand import Settings, expand, is_inpainting
    from laser_story.tinyworld.model import TinySpec, build_clip, build_model, build_vae

    spec = TinySpec(in_channels=9)
    model, clip, vae = build_model(spec, seed=0), build_clip(spec, seed=1), build_vae(spec, seed=2)
    seen = []

    def wrapper(apply_model, args):
        seen.append(tuple(args["c"]["c_concat"].shape))
        return apply_model(args["input"], args["timestep"], **args["c"])

    patched = model.clone()
    patched.set_model_unet_function_wrapper(wrapper)
    assert is_inpainting(patched) and not is_inpainting(comfy_host.nodes.NODE_CLASS_MAPPINGS["LaserStoryTinyModel"]().load("tinyworld.safetensors")[0])
    image = torch.full((64, 64, 3), 0.25)
    result = expand(patched, clip, vae, image, "a grey scene", [("right", "a red star")],
                    Settings(window=64, step=32, overlap=8, steps=2, cfg=2.0))
    # mask + masked-image latent on every call: the window (8x8 latent) and the local caption's area (the 8x4 strip)
    assert {shape[1:] for shape in seen} == {(5, 8, 8), (5, 8, 4)}, seen
    kept = result.generated[:, :64] == 0
    assert torch.equal(result.canvas[:, :64][kept], image[kept])


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def test_a_16_step_expansion_keeps_memory_flat_and_an_interrupt_stops_it(comfy_host):
    import comfy.model_management

    from laser_story.canvas.expand import Settings, expand

    model, clip, vae = comfy_host.nodes.NODE_CLASS_MAPPINGS["LaserStoryTinyModel"]().load("tinyworld.safetensors")[:3]
    settings = Settings(window=64, step=32, overlap=8, steps=2, cfg=5.0)
    rss: list[float] = []
    result = expand(model, clip, vae, torch.full((64, 64, 3), 0.5), "a grey scene", [("right", "a grey scene")] * 16,
                    settings, progress=lambda done, total, canvas: rss.append(_rss_mib()))
    assert tuple(result.canvas.shape) == (64, 64 + 16 * 32, 3) and len(rss) == 16
    print(f"\nRSS after steps 4..16: {rss[3]:.0f} .. {rss[-1]:.0f} MiB (max {max(rss[3:]):.0f})")
    assert max(rss[3:]) - rss[3] < 64, "a step's work does not grow with the canvas"

    def interrupt_after_two(done, total, canvas):
        if done == 2:
            comfy.model_management.interrupt_current_processing(True)

    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            expand(model, clip, vae, torch.full((64, 64, 3), 0.5), "a grey scene", [("up", "a grey scene")] * 5,
                   settings, progress=interrupt_after_two)
    finally:
        comfy.model_management.interrupt_current_processing(False)


def test_bad_images_and_plans_are_handled_with_a_clear_message(comfy_host):
    from laser_story.canvas.expand import Settings, expand
    from laser_story.llm.tasks.base import PlanError
    from laser_story.llm.tasks.expand import parse_expand_plan

    graph = expand_graph(directions="right")
    graph["2"]["inputs"].update(width=70, height=66)
    comfy_host.run(graph)
    assert tuple(comfy_host.captured["canvas"].shape) == (1, 64, 96, 3)
    assert json.loads(comfy_host.captured["info"])["notes"] == [
        "image: resized from 70x66 to 64x64 (sides must be multiples of 8)"]

    model, clip, vae = comfy_host.nodes.NODE_CLASS_MAPPINGS["LaserStoryTinyModel"]().load("tinyworld.safetensors")[:3]
    with pytest.raises(ValueError, match=r"the canvas would be 320x64 = 0\.0 MP, over the limit"):
        expand(model, clip, vae, torch.zeros(64, 64, 3), "a scene", [("right", "x")] * 8,
               Settings(window=64, step=32, max_pixels=64 * 300))
    with pytest.raises(PlanError, match=r"steps\[0\]: unknown field\(s\) 'zoom'; the fields are direction, caption"):
        parse_expand_plan({"task": "expand", "global_caption": "x", "steps": [{"direction": "up", "caption": "a", "zoom": 2}]})
    with pytest.raises(PlanError, match=r"field 'direction' is 'sideways'; expected one of left, right, up, down"):
        parse_expand_plan({"task": "expand", "global_caption": "x", "steps": [{"direction": "sideways", "caption": "a"}]})
    with pytest.raises(PlanError, match=r"field 'steps' needs at least 1"):
        parse_expand_plan({"task": "expand", "global_caption": "x", "steps": []})
