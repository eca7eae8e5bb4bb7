"""An API key in the environment never lands anywhere a user or another client could read it.

A real ComfyUI server plans with an OpenAI-compatible backend (a real llama.cpp server that refuses requests
without the key), then saves an image and two animations. The key's value must appear nowhere: not in the
PNG/WebP/GIF files and their metadata, the saved workflow, /history, /object_info, the server log or the LLM
cache files.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request

import pytest
from comfy_harness import ServerProcess, comfy_root
from llm_fixtures import GEMMA_ALIAS, gemma_path, start_llama_server  # noqa: F401

from laser_story.llm.llama_server import stop_process

pytestmark = [pytest.mark.server, pytest.mark.llm]

KEY_ENV = "LASER_STORY_TEST_OPENAI_KEY"


def graph(base_url: str) -> dict:
    return {
        "1": {"class_type": "LaserStoryTinyModel", "inputs": {"weights": "tinyworld.safetensors"}},
        "2": {"class_type": "LaserStoryLLMConfig",
              "inputs": {"backend": "openai", "model": GEMMA_ALIAS, "base_url": base_url, "api_key_env": KEY_ENV,
                         "timeout_s": 120.0, "max_attempts": 3, "unload_after": False, "n_ctx": 2048}},
        "3": {"class_type": "LaserStoryLLMPlanner",
              "inputs": {"task": "morph", "text": "a red star turns into a blue star", "temperature": 0.0, "seed": 0,
                         "max_tokens": 256, "llm_config": ["2", 0], "image_caption": "a large red star in the center"}},
        "4": {"class_type": "LaserStoryMorphInterpolator",
              "inputs": {"model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "plan": ["3", 0],
                         "frames_per_segment": 3, "steps": 8, "cfg": 5.0, "scheduler": "ddim_uniform", "seed": 0,
                         "width": 64, "height": 64}},
        "5": {"class_type": "SaveAnimatedWEBP",
              "inputs": {"images": ["4", 0], "filename_prefix": "secrets/anim", "fps": 10.0, "lossless": True,
                         "quality": 90, "method": "default"}},
        "6": {"class_type": "LaserStorySaveAnimatedGIF",
              "inputs": {"images": ["4", 0], "filename_prefix": "secrets/anim", "fps": 10.0, "loop": 0, "pingpong": False}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "secrets/frame"}},
    }  # fmt: skip


def ui_workflow(api: dict) -> dict:
    """The graph as the frontend saves it: nodes with their widget values (enough for the metadata check)."""
    return {"nodes": [{"id": int(i), "type": n["class_type"],
                       "widgets_values": [v for v in n["inputs"].values() if not isinstance(v, list)]}
                      for i, n in api.items()], "links": [], "version": 0.4}  # fmt: skip


def test_the_api_key_appears_nowhere(gemma_path, tmp_path):  # noqa: F811
    key = "sk-laser-story-" + secrets.token_hex(16)
    llama = start_llama_server(gemma_path, tmp_path / "llama.log", api_key=key)
    server = None
    try:
        with pytest.raises(urllib.error.HTTPError):  # the endpoint really wants the key
            urllib.request.urlopen(f"{llama.base_url}/models", timeout=10)
        server = ServerProcess(comfy_root(), tmp_path / "comfy", env={KEY_ENV: key})
        api = graph(f"http://127.0.0.1:{llama.port}")
        history, _ = server.run(api, extra_data={"extra_pnginfo": {"workflow": ui_workflow(api)}})
        assert history["status"]["status_str"] == "success"
        status, _ = server.post_json("/api/userdata/workflows%2Fsecrets.json?overwrite=true", ui_workflow(api))
        assert status == 200

        places: dict[str, bytes] = {
            "/history": json.dumps(server.get_json("/history")).encode(),
            "/object_info": server.get("/object_info"),
            "server log": server.log().encode(),
        }
        saved = [image for node in history["outputs"].values() for key in ("images", "gifs") for image in node.get(key, [])]
        assert {s["filename"].rsplit(".", 1)[1] for s in saved} == {"png", "webp", "gif"}
        for image in saved:
            places[image["filename"]] = (server.base / "output" / image["subfolder"] / image["filename"]).read_bytes()
        png = next(data for name, data in places.items() if name.endswith(".png"))
        assert b"LaserStoryLLMConfig" in png, "the PNG carries the graph, so the check looks at real metadata"
        places["saved workflow"] = (server.base / "user" / "default" / "workflows" / "secrets.json").read_bytes()
        cache_files = list((server.base / "user" / "laser-story" / "llm-cache").rglob("*.json"))
        assert cache_files, "the planner's reply was cached"
        places.update({f"cache {p.name}": p.read_bytes() for p in cache_files})
        leaks = [where for where, data in places.items() if key.encode() in data or key[3:].encode() in data]
        assert leaks == [], f"the key's value appears in {leaks}"
        assert KEY_ENV.encode() in places["saved workflow"], "the workflow keeps the variable's name, nothing more"
    finally:
        if server is not None:
            server.stop()
        stop_process(llama.process)
