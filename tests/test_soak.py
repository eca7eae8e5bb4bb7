"""A long queue on one real server: many graphs queued at once over HTTP on the built-in model.

Text-to-image and morph graphs mixed, some planned by the real llama.cpp server, some cancelled from the
queue, some interrupted mid-run. Every graph must finish, be cancelled or be interrupted as asked; every
finished one's outputs must be in /history and on disk; the server's memory after the run must stay within
a bound set from a warm-up; no feature bank or llama.cpp server may be left behind.

``LASER_STORY_SOAK_GRAPHS`` sets the number of graphs (CI: the default 50; the full run: 200).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid

import pytest
from comfy_harness import ServerProcess, comfy_root, tiny_txt2img
from llm_fixtures import GEMMA_FILE, gemma_path  # noqa: F401

pytestmark = [pytest.mark.server, pytest.mark.llm, pytest.mark.slow]

GRAPHS = int(os.environ.get("LASER_STORY_SOAK_GRAPHS", "50"))
MIB = 1024 * 1024
RSS_GROWTH = 1.25  # after/warm-up ratio allowed, plus RSS_SLACK: caches fill, nothing should keep growing
RSS_SLACK = 100 * MIB
TINY = ("LaserStoryTinyModel", {"weights": "tinyworld.safetensors"})


def txt2img(i: int) -> dict:
    return tiny_txt2img(f"soak/t2i_{i}", TINY, ["a large red star", "a small blue circle on sand"][i % 2], steps=6)


def morph(i: int, steps: int = 8, frames: int = 3, planned: bool = False, unload: bool = False) -> dict:
    graph = {
        "1": {"class_type": TINY[0], "inputs": TINY[1]},
        "3": {"class_type": "LaserStoryMorphInterpolator",
              "inputs": {"model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "frames_per_segment": frames,
                         "steps": steps, "cfg": 5.0, "scheduler": "ddim_uniform", "seed": i, "width": 64, "height": 64,
                         "prompts": "a large red star in the center\na large blue star in the center", "controls": "0"}},
        "4": {"class_type": "SaveAnimatedWEBP",
              "inputs": {"images": ["3", 0], "filename_prefix": f"soak/morph_{i}", "fps": 10.0, "lossless": False,
                         "quality": 80, "method": "default"}},
    }  # fmt: skip
    if planned:
        graph["5"] = {"class_type": "LaserStoryLLMConfig",
                      "inputs": {"backend": "llama_cpp", "model": GEMMA_FILE, "base_url": "", "api_key_env": "",
                                 "timeout_s": 120.0, "max_attempts": 3, "unload_after": unload, "n_ctx": 2048}}
        graph["6"] = {"class_type": "LaserStoryLLMPlanner",
                      "inputs": {"task": "morph", "text": f"it turns blue, variant {i}", "temperature": 0.2, "seed": i,
                                 "max_tokens": 200, "llm_config": ["5", 0],
                                 "image_caption": "a large red star in the center"}}
        graph["3"]["inputs"]["plan"] = ["6", 0]
    return graph  # fmt: skip


def plan_of_the_queue(n: int) -> list[tuple[str, dict]]:
    """(what should happen, graph): every 10th planned by the LLM, every 8th interrupted, every 6th of the
    second half cancelled while it waits, the rest text-to-image and morph."""
    plan = []
    for i in range(n):
        if i % 10 == 5:
            plan.append(("finish", morph(i, planned=True, unload=i + 10 >= n)))
        elif i % 8 == 3:
            plan.append(("interrupt", morph(i, steps=60, frames=8)))
        elif i >= n // 2 and i % 6 == 0:
            plan.append(("cancel", txt2img(i)))
        else:
            plan.append(("finish", morph(i) if i % 3 == 0 else txt2img(i)))
    return plan


def queue_empty(server: ServerProcess) -> bool:
    queue = server.get_json("/queue")
    return not queue["queue_running"] and not queue["queue_pending"]


def test_a_long_queue_on_one_server(gemma_path, tmp_path):  # noqa: F811
    import websocket

    server = ServerProcess(comfy_root(), tmp_path / "comfy")
    try:
        for graph in (txt2img(0), morph(0), morph(0, planned=True, unload=True)):  # warm-up: every kind once
            history, _ = server.run(graph)
            assert history["status"]["status_str"] == "success"
        rss_warm = server.rss_bytes()

        client_id = str(uuid.uuid4())
        ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws?clientId={client_id}", timeout=600)
        planned = plan_of_the_queue(GRAPHS)
        ids: list[str] = []
        for _, graph in planned:
            status, body = server.post_json("/prompt", {"prompt": graph, "client_id": client_id})
            assert status == 200, body
            ids.append(body["prompt_id"])
        cancel = [pid for pid, (fate, _) in zip(ids, planned, strict=True) if fate == "cancel"]
        status, _ = server.post_json("/queue", {"delete": cancel})
        assert status == 200
        interrupt = {pid for pid, (fate, _) in zip(ids, planned, strict=True) if fate == "interrupt"}
        interrupted: set[str] = set()
        t0 = time.monotonic()

        def follow() -> None:
            """Interrupt each 'interrupt' graph once it is sampling (its first progress message)."""
            while True:
                try:
                    frame = ws.recv()
                except Exception:  # noqa: BLE001 - the socket closes at the end
                    return
                if isinstance(frame, bytes):
                    continue
                msg = json.loads(frame)
                data = msg.get("data") or {}
                pid = data.get("prompt_id")
                if msg["type"] == "progress" and pid in interrupt and pid not in interrupted and data.get("value", 0) >= 3:
                    interrupted.add(pid)
                    server.post_json("/interrupt", {"prompt_id": pid})

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        deadline = time.monotonic() + 60 * 60
        while not queue_empty(server):
            assert time.monotonic() < deadline, "the queue did not drain within an hour"
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        ws.close()
        follower.join(timeout=10)

        history = server.get_json("/history", max_items=100_000)
        counts = {"finish": 0, "cancel": 0, "interrupt": 0}
        for pid, (fate, _) in zip(ids, planned, strict=True):
            counts[fate] += 1
            if fate == "cancel":
                assert pid not in history, "a cancelled graph ran"
                continue
            entry = history[pid]
            if fate == "interrupt":
                assert pid in interrupted
                assert entry["status"]["status_str"] == "error"
                assert any(kind == "execution_interrupted" for kind, _ in entry["status"]["messages"])
                continue
            assert entry["status"]["status_str"] == "success", entry["status"]
            files = [img for node in entry["outputs"].values() for img in node.get("images", [])]
            assert files, f"{pid} finished without outputs"
            for img in files:
                assert (server.base / "output" / img["subfolder"] / img["filename"]).is_file(), img

        rss_after = server.rss_bytes()
        status = server.get_json("/laser-story/status")
        print(f"\nsoak: {GRAPHS} graphs ({counts['finish']} finished, {counts['cancel']} cancelled, "
              f"{counts['interrupt']} interrupted) in {elapsed:.0f} s; server RSS warm-up {rss_warm / MIB:.0f} MiB, "
              f"after {rss_after / MIB:.0f} MiB (bound {(rss_warm * RSS_GROWTH + RSS_SLACK) / MIB:.0f} MiB); "
              f"status {status}")
        assert rss_after <= rss_warm * RSS_GROWTH + RSS_SLACK
        assert status["feature_banks_holding"] == 0 and status["feature_bank_bytes"] == 0
        assert status["llm_servers"] == [], "the last planned graph unloads the model"
        assert not [c for c in server.children() if "llama" in c], server.children()
        next_one, _ = server.run(txt2img(GRAPHS))  # and the server still works
        assert next_one["status"]["status_str"] == "success"
    finally:
        server.stop()
