"""The pack in a real headless ComfyUI server, driven over HTTP and the websocket like any API client."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from test_host import tiny_txt2img

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
    assert "LLM" in comfy_server.get_json("/models")


def test_core_ksampler_graph_over_http_returns_an_image(comfy_server):
    history, messages = comfy_server.run(tiny_txt2img("http_txt2img"))
    assert history["status"]["status_str"] == "success"
    image = history["outputs"]["7"]["images"][0]
    data = comfy_server.get("/view", filename=image["filename"], subfolder=image["subfolder"], type=image["type"])
    with Image.open(io.BytesIO(data)) as png:
        assert png.size == (64, 64)
        assert "prompt" in png.info, "SaveImage embeds the API graph"
    assert any(kind == "execution_success" for kind, _ in messages)
