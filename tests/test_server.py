"""The pack in a real headless ComfyUI server, driven over HTTP and the websocket like any API client."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from comfy_harness import tiny_txt2img
from PIL import Image

from scripts.workflow_formats import api_from_ui

pytestmark = pytest.mark.server


def test_server_lists_the_pack_nodes_without_import_failures(comfy_server):
    info = comfy_server.get_json("/object_info")
    ours = {name: node for name, node in info.items() if node["python_module"] == "custom_nodes.laser-story"}
    assert {"LaserStoryAttentionInjector", "LaserStoryMorphInterpolator"} <= set(ours)
    for node in ours.values():
        assert node["category"].startswith("laser-story/")
        for spec in {**node["input"]["required"], **node["input"].get("optional", {})}.values():
            assert spec[1].get("tooltip") if len(spec) > 1 else False, f"{node['name']}: an input has no tooltip"
    log = comfy_server.log()
    assert "IMPORT FAILED" not in "\n".join(line for line in log.splitlines() if "laser-story" in line)
    assert "laser-story: nodes/" not in log, "a node module of the pack was disabled"



def test_a_story_plan_wired_into_the_morph_interpolator_is_refused_at_queue_time(comfy_server):
    """Plans are typed per task: validation refuses the interpolator, naming both types, before anything runs.

    The planner is an output node (it shows its plan), so ComfyUI still runs that one and reports the
    refused branch in ``node_errors``; nothing of the refused branch runs."""
    graph = {
        "1": {"class_type": "LaserStoryTestTinyRandomModel", "inputs": {"seed": 0}},
        "2": {"class_type": "LaserStoryLLMPlanner",
              "inputs": {"task": "story", "text": "Mia met Tom. She waved.", "temperature": 0.0, "seed": 0,
                         "max_tokens": 256}},
        "3": {"class_type": "LaserStoryMorphInterpolator",
              "inputs": {"model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "plan": ["2", 3],
                         "frames_per_segment": 0, "steps": 4, "cfg": 5.0, "scheduler": "ddim_uniform", "seed": 0,
                         "width": 64, "height": 64}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }  # fmt: skip
    status, body = comfy_server.post_json("/prompt", {"prompt": graph})
    assert status == 200 and set(body["node_errors"]) == {"3"}
    (error,) = body["node_errors"]["3"]["errors"]
    assert error["type"] == "return_type_mismatch"
    assert "LASER_STORY_STORY_PLAN" in error["details"] and "LASER_STORY_MORPH_PLAN" in error["details"]
    history = comfy_server.wait_for(body["prompt_id"])
    assert set(history["outputs"]) == {"2"}, "only the planner ran; the refused branch did not"
    graph["2"]["inputs"].update(task="morph", text="a red star turns into a blue star")
    graph["3"]["inputs"]["plan"] = ["2", 0]  # the planner's morph output is the one the interpolator takes
    history, _ = comfy_server.run(graph)
    assert history["status"]["status_str"] == "success"


def test_llm_model_folder_honours_base_directory_and_extra_model_paths(comfy_server):
    assert "LLM" in comfy_server.get_json("/models")
    assert "from-extra-model-paths.gguf" in comfy_server.get_json("/models/LLM")


def test_core_ksampler_graph_over_http_returns_an_image(comfy_server):
    history, messages = comfy_server.run(tiny_txt2img("http_txt2img"))
    assert history["status"]["status_str"] == "success"
    image = history["outputs"]["7"]["images"][0]
    data = comfy_server.get("/view", filename=image["filename"], subfolder=image["subfolder"], type=image["type"])
    with Image.open(io.BytesIO(data)) as png:
        assert png.size == (64, 64)
        assert "prompt" in png.info, "SaveImage embeds the API graph"
    assert any(kind == "execution_success" for kind, _ in messages)


WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"


def test_laser_morph_workflow_runs_headless_and_writes_the_animation(comfy_server):
    api = json.loads((WORKFLOWS / "api" / "laser_morph.json").read_text())
    history, messages = comfy_server.run(api)
    assert history["status"]["status_str"] == "success"
    frames = None
    for node_id, key, suffix in (("4", "images", ".webp"), ("5", "gifs", ".gif")):
        saved = history["outputs"][node_id][key][0]
        assert saved["filename"].endswith(suffix)
        data = comfy_server.get("/view", filename=saved["filename"], subfolder=saved["subfolder"], type="output")
        with Image.open(io.BytesIO(data)) as animation:
            assert animation.size == (256, 256), "128x128 frames, upscaled 2x for viewing"
            frames = frames or animation.n_frames
            assert animation.n_frames == frames > 2
    progress = [data for kind, data in messages if kind == "progress" and data["node"] == "3"]
    assert progress and progress[-1]["value"] == progress[-1]["max"], "the morph reports progress over the whole job"
    assert any(kind == "binary" for kind, _ in messages), "latent previews are sent while the morph runs"


def test_animate_image_workflow_plans_p0_from_the_image_and_animates_it(comfy_server):
    """The input image's caption comes from the Built-in Image Caption node, and every keyframe edits it."""
    api = json.loads((WORKFLOWS / "api" / "laser_animate_image.json").read_text())
    history, _ = comfy_server.run(api)
    assert history["status"]["status_str"] == "success"
    (caption,) = history["outputs"]["20"]["text"]
    plan = json.loads(history["outputs"]["2"]["text"][-1])
    assert plan["prompts"][0] == caption and "star" in caption
    assert plan["prompts"][1] == caption.replace(caption.split(" star")[0].split()[-1] + " star", "blue star", 1)
    assert plan["controls"] == ["0", "1"] and "on the right" in plan["prompts"][2]
    saved = history["outputs"]["4"]["images"][0]
    data = comfy_server.get("/view", filename=saved["filename"], subfolder=saved["subfolder"], type="output")
    with Image.open(io.BytesIO(data)) as animation:
        assert animation.n_frames == 2 * plan["frames_per_segment"] - 1


def test_ui_workflows_match_their_api_twins_and_are_listed_as_templates(comfy_server):
    object_info = comfy_server.get_json("/object_info")
    for ui_path in WORKFLOWS.glob("*.json"):
        api = json.loads((WORKFLOWS / "api" / ui_path.name).read_text())
        assert api_from_ui(json.loads(ui_path.read_text()), object_info) == api, ui_path.name
    templates = comfy_server.get_json("/workflow_templates")
    assert sorted(templates["laser-story"]) == sorted(p.stem for p in WORKFLOWS.glob("*.json"))


@pytest.mark.parametrize(("name", "size"), [("canvas_panorama", (1024, 128)), ("canvas_grow", (256, 256))])
def test_canvas_workflows_grow_a_world_scene_headless(comfy_server, name, size):
    api = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())
    history, messages = comfy_server.run(api)
    assert history["status"]["status_str"] == "success"
    saved = history["outputs"]["9"]["images"][0]
    data = comfy_server.get("/view", filename=saved["filename"], subfolder=saved["subfolder"], type="output")
    with Image.open(io.BytesIO(data)) as canvas:
        assert canvas.size == size
    info = json.loads(history["outputs"]["8"]["text"][0])
    plan = api["7"]["inputs"]["directions"]
    assert len(info["steps"]) == (14 if "x14" in plan else 4)
    progress = [data for kind, data in messages if kind == "progress" and data["node"] == "8"]
    assert progress[-1]["value"] == progress[-1]["max"] == len(info["steps"]), "one progress tick per expansion step"
    assert any(kind == "binary" for kind, _ in messages), "a preview of the canvas is sent after each step"


@pytest.mark.timeout(1800)
@pytest.mark.parametrize(("name", "panels"), [("story_world", 7), ("story_references", 5), ("story_animated", 4)])
def test_story_workflows_draw_every_sentence_headless(comfy_server, name, panels):
    api = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())
    history, messages = comfy_server.run(api, timeout=1200)
    assert history["status"]["status_str"] == "success"
    saved = history["outputs"]["5"]["images"][0]
    data = comfy_server.get("/view", filename=saved["filename"], subfolder=saved["subfolder"], type="output")
    with Image.open(io.BytesIO(data)) as strip:
        assert strip.size[0] > 4 * 256 and strip.size[1] > 256, "4 panels a row, 128x128 upscaled 2x, with captions"
    info = json.loads(history["outputs"]["3"]["text"][0])["frames"]
    assert len(info) == panels and all(f["characters"] for f in info)
    progress = [data for kind, data in messages if kind == "progress" and data["node"] == "3"]
    assert progress[-1]["value"] == progress[-1]["max"] == 20 * panels, "one tick per step of every frame"
    if name == "story_animated":
        gif = history["outputs"]["9"]["gifs"][0]
        data = comfy_server.get("/view", filename=gif["filename"], subfolder=gif["subfolder"], type="output")
        with Image.open(io.BytesIO(data)) as animation:
            assert animation.n_frames == (panels - 1) * 5 + 1, "one LASER segment of 6 frames between panels"
