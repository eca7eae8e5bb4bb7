"""Shared fixtures: the host ComfyUI in-process and as a real headless server."""

from __future__ import annotations

import pytest
from comfy_harness import InProcessHost, ServerProcess, comfy_root


@pytest.fixture(scope="session")
def comfy_path():
    root = comfy_root()
    if not (root / "main.py").is_file():
        pytest.fail(f"no ComfyUI at {root}: run `make setup` (or set COMFYUI_PATH to a ComfyUI folder)")
    return root


@pytest.fixture(scope="session")
def comfy_host(comfy_path, tmp_path_factory) -> InProcessHost:
    """ComfyUI imported into the test process with laser-story and the testing pack loaded."""
    return InProcessHost(comfy_path, tmp_path_factory.mktemp("comfy-inproc"))


@pytest.fixture(scope="session")
def comfy_server(comfy_path, tmp_path_factory):
    """A headless ComfyUI server on a free 127.0.0.1 port; stopped at the end of the session."""
    extra = tmp_path_factory.mktemp("extra-model-paths")
    (extra / "LLM").mkdir()
    (extra / "LLM" / "from-extra-model-paths.gguf").write_bytes(b"")
    config = extra / "extra_model_paths.yaml"
    config.write_text(f"testing:\n    base_path: {extra}\n    LLM: LLM\n")
    server = ServerProcess(comfy_path, tmp_path_factory.mktemp("comfy-server"),
                           extra_args=("--extra-model-paths-config", str(config)))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_sd(comfy_host):
    """Random-weight tiny SD1.x MODEL, CLIP and VAE (SD1.5 block topology) built with ComfyUI's classes."""
    from laser_story.tinyworld.model import TinySpec, build_clip, build_model, build_vae

    spec = TinySpec()
    return build_model(spec, seed=0), build_clip(spec, seed=1), build_vae(spec, seed=2)
