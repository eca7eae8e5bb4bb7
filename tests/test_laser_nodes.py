"""The LASER nodes in ComfyUI graphs: typed prompts, keyframe images, animation output and bad input."""

from __future__ import annotations

import json

import pytest
from comfy_harness import GraphExecutionError
from PIL import Image

pytestmark = pytest.mark.host


def morph_graph(prompts: str, controls: str, frames: int = 3, image: bool = False, injector: dict | None = None) -> dict:
    graph = {
        "1": {"class_type": "LaserStoryTestTinyRandomModel", "inputs": {"seed": 0}},
        "2": {"class_type": "LaserStoryMorphInterpolator", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "frames_per_segment": frames, "steps": 4, "cfg": 5.0,
            "scheduler": "ddim_uniform", "seed": 0, "width": 64, "height": 64, "prompts": prompts, "controls": controls,
            "negative": ""}},
        "3": {"class_type": "LaserStoryTestCapture", "inputs": {"value": ["2", 0], "key": "frames"}},
        "4": {"class_type": "LaserStoryTestCapture", "inputs": {"value": ["2", 2], "key": "info"}},
    }
    if image:
        graph["5"] = {"class_type": "EmptyImage", "inputs": {"width": 70, "height": 66, "batch_size": 1, "color": 0x3366CC}}
        graph["2"]["inputs"]["image"] = ["5", 0]
    if injector is not None:
        graph["6"] = {"class_type": "LaserStoryAttentionInjector", "inputs": {"model": ["1", 0], **injector}}
        graph["2"]["inputs"]["model"] = ["6", 0]
    return graph


INJECTOR_DEFAULTS = {"f_t": 0.8, "qk_t": 0.5, "kv_t": 0.08, "qk_start_layer": 8, "kv_start_layer": 10,
                     "conv_output_block": 4, "store_fp16": True}


def test_typed_prompts_make_one_frame_batch_saved_as_gif(comfy_host):
    graph = morph_graph("a red star\na red star jumping\na blue circle", "1, 0")
    graph["7"] = {"class_type": "LaserStorySaveAnimatedGIF", "inputs": {
        "images": ["2", 0], "filename_prefix": "test/morph", "fps": 10.0, "loop": 0, "pingpong": False}}
    outputs = comfy_host.run(graph, extra_data={"extra_pnginfo": {"workflow": {"nodes": []}}})
    frames = comfy_host.captured["frames"]
    assert tuple(frames.shape) == (3 + 2, 64, 64, 3)
    info = comfy_host.captured["info"].splitlines()
    assert len(info) == 5 and info[0].startswith("segment 0 frame 0 control 1") and "control 0" in info[-1]
    saved = outputs["7"]["gifs"][0]
    path = comfy_host.folder_paths.get_output_directory() + f"/{saved['subfolder']}/{saved['filename']}"
    with Image.open(path) as gif:
        assert gif.n_frames == 5 and gif.size == (64, 64)
        embedded = json.loads(gif.info["comment"])
    assert embedded["prompt"]["2"]["class_type"] == "LaserStoryMorphInterpolator" and "workflow" in embedded


def test_keyframe_image_is_resized_to_multiples_of_8_and_says_so(comfy_host):
    comfy_host.run(morph_graph("a blue square\na red square", "0", frames=2, image=True))
    assert tuple(comfy_host.captured["frames"].shape) == (2, 64, 64, 3)
    assert comfy_host.captured["info"].splitlines()[0] == "image: resized from 70x66 to 64x64 (sides must be multiples of 8)"


def test_injector_settings_flow_into_the_morph(comfy_host):
    comfy_host.run(morph_graph("a red star\na blue star", "2", injector={**INJECTOR_DEFAULTS, "store_fp16": False}))
    assert tuple(comfy_host.captured["frames"].shape) == (3, 64, 64, 3)
    assert "alpha 0.800" in comfy_host.captured["info"], "control 2 caps the interpolation at 0.8"


def test_even_frame_spacing_keeps_both_ends_and_reports_each_frames_weight(comfy_host):
    graph = morph_graph("a red star\na blue circle", "1", frames=4)
    graph["2"]["inputs"].update(frame_spacing="even", seed=1)
    comfy_host.run(graph)
    assert tuple(comfy_host.captured["frames"].shape) == (4, 64, 64, 3)
    alphas = [float(line.split(" alpha ")[1].split(":")[0]) for line in comfy_host.captured["info"].splitlines()]
    assert alphas[0] == 0.0 and alphas[-1] == 1.0 and alphas == sorted(alphas) and len(set(alphas)) == 4


@pytest.mark.parametrize(("change", "message"), [
    ({"frames_per_segment": 1}, "frames_per_segment: a segment needs at least 2 frames"),
    ({"prompts": "a red star\na blue star\na green star", "controls": "1"}, "field 'controls' has 1 codes but the 3 prompts make 2 segments"),
    ({"prompts": "a red star\na blue star", "controls": "7"}, "field 'controls' has '7'"),
    ({"prompts": "a red star\na blue star", "controls": "3"}, "starts with '3'"),
])
def test_bad_constant_inputs_fail_validation_with_the_input_named(comfy_host, change, message):
    graph = morph_graph("a red star\na blue star", "1")
    graph["2"]["inputs"].update(change)
    with pytest.raises(GraphExecutionError) as failure:
        comfy_host.run(graph)
    assert message in str(failure.value)


def test_missing_prompts_and_plan_is_a_clear_error(comfy_host):
    with pytest.raises(GraphExecutionError, match="plan/prompts: connect a morph plan"):
        comfy_host.run(morph_graph("", ""))
