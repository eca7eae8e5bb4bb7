"""Two real ComfyUI hosts for the tests: in-process (ComfyUI's own executor) and a headless server.

Both load this pack exactly as ComfyUI does (``nodes.load_custom_node`` on the folder: by path, with
relative imports) next to the test-only pack in ``tests/testing_nodes``.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTING_PACK = REPO_ROOT / "tests" / "testing_nodes" / "laser_story_testing"
PACK_DIR_NAME = "laser-story"


def comfy_root() -> Path:
    """The host ComfyUI: ``COMFYUI_PATH`` or the one ``scripts/setup.sh`` extracted."""
    env = os.environ.get("COMFYUI_PATH")
    if env:
        return Path(env).resolve()
    host_env = REPO_ROOT / ".cache" / "host.env"
    if host_env.exists():
        return Path(host_env.read_text().strip().split("=", 1)[1])
    return REPO_ROOT / ".host" / "ComfyUI"


def make_base_directory(base: Path, host_root: Path, with_testing_pack: bool = True) -> Path:
    """A ``--base-directory`` with this pack (and the testing pack) in custom_nodes and the host's LLM models."""
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    packs = [(PACK_DIR_NAME, REPO_ROOT)] + ([(TESTING_PACK.name, TESTING_PACK)] if with_testing_pack else [])
    for name, target in packs:
        link = base / "custom_nodes" / name
        if not link.exists():
            link.symlink_to(target, target_is_directory=True)
    (base / "models").mkdir(exist_ok=True)
    llm_models = host_root / "models" / "LLM"
    if llm_models.is_dir() and not (base / "models" / "LLM").exists():
        (base / "models" / "LLM").symlink_to(llm_models, target_is_directory=True)
    for sub in ("input", "output", "temp", "user"):
        (base / sub).mkdir(exist_ok=True)
    return base


class GraphExecutionError(RuntimeError):
    """A graph that failed validation or execution; ``details`` holds ComfyUI's own error record."""

    def __init__(self, message: str, details: Any):
        super().__init__(message)
        self.details = details


class _StubServer:
    """The few PromptServer attributes the executor and progress handlers touch."""

    def __init__(self) -> None:
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.last_prompt_id: str | None = None
        self.sockets_metadata: dict = {}
        self.messages: list[tuple[str, Any]] = []

    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        self.messages.append((event, data))

    def send_progress_text(self, text: str, node_id: str, sid: str | None = None) -> None:
        self.messages.append(("progress_text", {"node": node_id, "text": text}))


class InProcessHost:
    """ComfyUI imported into this process with the pack loaded; graphs run through PromptExecutor."""

    def __init__(self, root: Path, base: Path):
        self.root = root
        self.base = make_base_directory(base, root)
        sys.path.insert(0, str(root))
        import comfy.options  # noqa: F401  (argument parsing stays off: no CLI here)
        from comfy.cli_args import args

        args.cpu = True
        args.base_directory = str(self.base)
        args.disable_api_nodes = True
        # This order matters: importing `nodes` puts comfy/ first on sys.path, after which `utils` would
        # resolve to comfy/utils.py and `server` (through app.frontend_management) could no longer import.
        for name in ("folder_paths", "utils.extra_config", "server", "execution", "nodes"):
            importlib.import_module(name)
        folder_paths, server, execution, nodes = (sys.modules[n] for n in ("folder_paths", "server", "execution", "nodes"))
        self.server = _StubServer()
        server.PromptServer.instance = self.server
        self.folder_paths = folder_paths
        self.nodes = nodes
        self.execution = execution
        asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
        self.pack_dir = self.base / "custom_nodes" / PACK_DIR_NAME
        for path in (self.pack_dir, self.base / "custom_nodes" / TESTING_PACK.name):
            if not asyncio.run(nodes.load_custom_node(str(path), module_parent="custom_nodes")):
                raise RuntimeError(f"ComfyUI could not load {path}")
        self.pack_module = sys.modules[str(self.pack_dir).replace(".", "_x_")]
        self.captured = sys.modules[str(self.base / "custom_nodes" / TESTING_PACK.name).replace(".", "_x_")].CAPTURED
        self.executor = execution.PromptExecutor(self.server, cache_type=execution.CacheType.CLASSIC, cache_args={"lru": 0, "ram": 0})

    def validate(self, prompt: dict) -> tuple[bool, Any, list, dict]:
        return asyncio.run(self.execution.validate_prompt(str(uuid.uuid4()), prompt, None))

    def run(self, prompt: dict, extra_data: dict | None = None) -> dict:
        """Validate and execute an API-format graph; returns the UI outputs per node id."""
        ok, error, outputs, node_errors = self.validate(prompt)
        if not ok:
            raise GraphExecutionError(f"validation failed: {error.get('message')}: {json.dumps(node_errors)}", node_errors or error)
        self.captured.clear()
        self.server.messages.clear()
        prompt_id = str(uuid.uuid4())
        self.executor.execute(prompt, prompt_id, extra_data or {}, outputs)
        if not self.executor.success:
            failure = next((d for e, d in self.executor.status_messages if e in ("execution_error", "execution_interrupted")), {})
            raise GraphExecutionError(failure.get("exception_message", "execution interrupted"), failure)
        return self.executor.history_result["outputs"]


def tiny_txt2img(save_prefix: str = "laser_story_test", loader: tuple[str, dict] = ("LaserStoryTestTinyRandomModel", {"seed": 0}),
                 text: str = "a red star", steps: int = 4, batch_size: int = 1) -> dict:
    """A core txt2img graph (CLIPTextEncode, KSampler, VAEDecode, SaveImage) on a loader node giving MODEL/CLIP/VAE."""
    return {
        "1": {"class_type": loader[0], "inputs": loader[1]},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": text}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": batch_size}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
              "latent_image": ["4", 0], "seed": 1, "steps": steps, "cfg": 5.0, "sampler_name": "euler",
              "scheduler": "normal", "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": save_prefix}},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python main.py --cpu`` on 127.0.0.1 with the pack in custom_nodes, driven over HTTP and /ws."""

    def __init__(self, root: Path, base: Path, python: str = sys.executable, extra_args: tuple[str, ...] = (),
                 with_testing_pack: bool = True, env: dict[str, str] | None = None):
        self.root = root
        self.base = make_base_directory(base, root, with_testing_pack)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.base / "server.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115  (closed in stop())
        self.process = subprocess.Popen(
            [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port), "--disable-auto-launch",
             "--disable-api-nodes", "--base-directory", str(self.base), "--database-url", "sqlite:///:memory:",
             "--preview-method", "latent2rgb", *extra_args],
            cwd=root, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )
        self._wait_ready(timeout=180)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode}:\n{self.log()}")
            try:
                self.get_json("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, **params: Any) -> bytes:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=60) as resp:
            return resp.read()

    def get_json(self, path: str, **params: Any) -> Any:
        return json.loads(self.get(path, **params))

    def post_json(self, path: str, body: Any) -> tuple[int, Any]:
        req = urllib.request.Request(f"{self.url}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def run(self, prompt: dict, extra_data: dict | None = None, timeout: float = 600,
            on_message: Callable[[str, dict], None] | None = None) -> tuple[dict, list]:
        """Queue a graph, follow /ws until it finishes; returns (history entry, websocket messages)."""
        import websocket

        client_id = str(uuid.uuid4())
        ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws?clientId={client_id}", timeout=timeout)
        messages: list = []
        try:
            status, body = self.post_json("/prompt", {"prompt": prompt, "client_id": client_id, "extra_data": extra_data or {}})
            if status != 200:
                raise GraphExecutionError(f"/prompt refused the graph ({status})", body)
            prompt_id = body["prompt_id"]
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                frame = ws.recv()
                if isinstance(frame, bytes):
                    messages.append(("binary", frame[:4]))
                    continue
                msg = json.loads(frame)
                messages.append((msg["type"], msg.get("data")))
                data = msg.get("data") or {}
                if data.get("prompt_id") != prompt_id:
                    continue
                if on_message is not None:
                    on_message(msg["type"], data)
                if msg["type"] in ("execution_error", "execution_interrupted"):
                    raise GraphExecutionError(data.get("exception_message", msg["type"]), data)
                if msg["type"] == "executing" and data.get("node") is None:
                    return self.get_json(f"/history/{prompt_id}")[prompt_id], messages
            raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout} s")
        finally:
            ws.close()

    def rss_bytes(self) -> int:
        """Resident memory of the server process (Linux /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS in /proc status")

    def children(self) -> list[str]:
        """Command lines of the server's live child processes."""
        found = []
        for proc in Path("/proc").iterdir():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                if proc.name.isdigit() and int(fields[1]) == self.process.pid and fields[0] != "Z":
                    found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip())
            except (OSError, IndexError, ValueError):
                continue
        return found

    def wait_for(self, prompt_id: str, timeout: float = 300) -> dict:
        """The history entry of a queued prompt, once it has finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get_json(f"/history/{prompt_id}")
            if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
                return history[prompt_id]
            time.sleep(0.2)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
