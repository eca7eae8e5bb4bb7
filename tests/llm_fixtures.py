"""Fixtures for the LLM tests (import them into a test module: ``from llm_fixtures import llama_server  # noqa: F401``).

* ``llama_server``: a real ``python -m llama_cpp.server`` with Gemma 3 270M from ``<ComfyUI>/models/LLM`` on a
  free 127.0.0.1 port, started once per session and stopped at its end. Nothing is downloaded.
* ``ollama_front``: an Ollama-protocol front (``/api/tags``, ``/api/chat``, ``/api/generate``) over that same
  llama.cpp server. There is no Ollama binary on this machine, so the native Ollama backend is tested against
  this front; it forwards ``format`` (the schema) and ``options`` as llama.cpp's ``response_format`` and
  sampling settings, and records every request.
* ``fake_server``: a factory of tiny recording HTTP servers whose answers the test scripts (bad JSON, delays,
  error statuses).
Every server and thread they start is shut down at teardown.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from comfy_harness import comfy_root

from laser_story.llm.llama_server import default_threads, free_port, stop_process

GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_ALIAS = "gemma-3-270m"


def llm_models_dir() -> Path:
    return comfy_root() / "models" / "LLM"


@dataclasses.dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


Responder = Callable[[Recorded], tuple[int, Any]]
"""Answers one request: (status, JSON-able payload, or a str sent as is)."""


class RecordingServer:
    """A threaded HTTP server on a free 127.0.0.1 port that records requests and answers via ``respond``."""

    def __init__(self, respond: Responder, delay: float = 0.0) -> None:
        self.requests: list[Recorded] = []
        self.closing = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                try:
                    body = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    body = raw
                record = Recorded(self.command, self.path, dict(self.headers), body)
                server.requests.append(record)
                if delay and server.closing.wait(delay):
                    return
                status, payload = respond(record)
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the timeout test)

            def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
                self._handle()

            def do_POST(self) -> None:  # noqa: N802
                self._handle()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name=f"fake-llm-{self.port}", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def fake_server() -> Iterator[Callable[..., RecordingServer]]:
    servers: list[RecordingServer] = []

    def make(respond: Responder, delay: float = 0.0) -> RecordingServer:
        server = RecordingServer(respond, delay)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@dataclasses.dataclass
class LlamaServer:
    process: subprocess.Popen[bytes]
    port: int
    model_path: Path
    log_path: Path
    alias: str = GEMMA_ALIAS

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    """The Gemma GGUF that scripts/setup.sh put into models/LLM; found on disk, never downloaded."""
    path = llm_models_dir() / GEMMA_FILE
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `bash scripts/setup.sh` (or deselect these tests with -m 'not llm')")
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail(f"llama-cpp-python is not installed in {sys.executable}: run `bash scripts/setup.sh`")
    return path


def start_llama_server(gemma_path: Path, log_path: Path, api_key: str = "") -> LlamaServer:
    """A real ``python -m llama_cpp.server`` with Gemma on a free port, ready to answer (stop it with stop_process)."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gemma_path), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", "2048", "--n_threads", str(default_threads()), "--chat_format", "gemma",
        "--model_alias", GEMMA_ALIAS, *(["--api_key", api_key] if api_key else []),
    ]  # fmt: skip
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = LlamaServer(process, port, gemma_path, log_path)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            pytest.fail(f"llama.cpp server exited with {process.returncode}:\n{log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{server.base_url}/models", headers=headers), timeout=2):
                return server
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                stop_process(process)
                pytest.fail(f"llama.cpp server not ready in 120 s:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.2)


@pytest.fixture(scope="session")
def llama_server(gemma_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    server = start_llama_server(gemma_path, tmp_path_factory.mktemp("llama-server") / "server.log")
    try:
        yield server
    finally:
        stop_process(server.process)


def _forward_chat(llama: LlamaServer, body: dict[str, Any]) -> dict[str, Any]:
    options = body.get("options") or {}
    fmt = body.get("format")
    payload: dict[str, Any] = {"model": GEMMA_ALIAS, "messages": body["messages"]}
    if isinstance(fmt, dict):
        payload["response_format"] = {"type": "json_object", "schema": fmt}
    elif fmt == "json":
        payload["response_format"] = {"type": "json_object"}
    for ours, theirs in (("temperature", "temperature"), ("seed", "seed"), ("num_predict", "max_tokens")):
        if ours in options:
            payload[theirs] = options[ours]
    request = urllib.request.Request(
        f"{llama.base_url}/chat/completions", json.dumps(payload).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        reply = json.loads(response.read())
    choice = reply["choices"][0]
    return {
        "model": body.get("model"),
        "message": {"role": "assistant", "content": choice["message"]["content"]},
        "done": True,
        "done_reason": choice.get("finish_reason") or "stop",
        "eval_count": reply.get("usage", {}).get("completion_tokens", 0),
    }


@pytest.fixture(scope="session")
def ollama_front(llama_server: LlamaServer) -> Iterator[RecordingServer]:
    """Ollama's native API in front of the llama.cpp server (there is no Ollama binary here)."""

    def respond(request: Recorded) -> tuple[int, Any]:
        if request.path == "/api/tags":
            return 200, {"models": [{"name": GEMMA_ALIAS, "model": GEMMA_ALIAS}]}
        if request.path == "/api/chat" and isinstance(request.body, dict):
            if request.body.get("model") != GEMMA_ALIAS:
                return 404, {"error": f"model '{request.body.get('model')}' not found"}
            return 200, _forward_chat(llama_server, request.body)
        if request.path == "/api/generate" and isinstance(request.body, dict) and not request.body.get("prompt"):
            return 200, {"model": request.body.get("model"), "done": True, "done_reason": "unload"}
        return 404, {"error": "not found"}

    server = RecordingServer(respond)
    yield server
    server.close()
