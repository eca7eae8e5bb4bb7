"""The pack's own llama.cpp server: ``llama_cpp.server`` on 127.0.0.1, one process per GGUF.

A child process rather than ``llama_cpp.Llama`` in ComfyUI's process keeps a crash or a native-library
clash out of ComfyUI, and makes "unload" simply "stop the process". Servers are reused across planner
nodes and runs, restarted when their settings change or after they died, and stopped on unload and at
interpreter exit. Requests hold a lease on their server: an unload asked for while another planner's request
is in flight waits for the last lease, so concurrent planners on one GGUF share one server safely.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import LLMConfigError, LLMError
from .transport import request_json

log = logging.getLogger(__name__)

CHILD = Path(__file__).with_name("llama_child.py")
SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """Everything that makes two servers interchangeable."""

    model_path: Path
    n_ctx: int = 2048
    n_threads: int = 0
    chat_format: str = "auto"
    lora_path: Path | None = None  # a GGUF LoRA adapter applied to the model

    @property
    def alias(self) -> str:
        return (self.lora_path or self.model_path).stem

    @property
    def key(self) -> Path:
        """What the pool keeps one server per: the adapter where there is one (base and tuned can run side by side)."""
        return (self.lora_path or self.model_path).resolve()

    def effective_chat_format(self) -> str | None:
        """``auto`` means the GGUF's own template, except for Gemma base files, which ship none."""
        if self.chat_format == "auto":
            return "gemma" if "gemma" in self.model_path.name.lower() else None
        return None if self.chat_format == "none" else self.chat_format

    def command(self, port: int) -> list[str]:
        threads = self.n_threads or default_threads()
        cmd = [
            sys.executable, str(CHILD), "--model", str(self.model_path), "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", str(self.n_ctx), "--n_threads", str(threads),
            "--model_alias", self.alias,
        ]  # fmt: skip
        chat_format = self.effective_chat_format()
        cmd += ["--chat_format", chat_format] if chat_format else []
        return cmd + (["--lora_path", str(self.lora_path)] if self.lora_path else [])


@dataclasses.dataclass
class RunningServer:
    settings: ServerSettings
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    log_reader: BinaryIO

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log_tail(self, limit: int = 1500) -> str:
        """The end of the server's output (its own read handle, so the file may already be unlinked)."""
        size = self.log_reader.seek(0, os.SEEK_END)
        self.log_reader.seek(max(0, size - limit))
        return self.log_reader.read().decode("utf-8", errors="replace")


def died_message(server: RunningServer) -> str:
    """Why a request failed when its server process is gone: the exit status and the server's last words
    (a bare "connection closed" would send the user to check a URL the pack chose itself)."""
    code = server.process.returncode
    status = f"signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() else f"code {code}"
    hint = ""
    if code == -signal.SIGSEGV:
        hint = (" A llama-cpp-python compiled with -march=native on a CPU that reports AMX crashes this way where the "
                "machine does not grant AMX; rebuild it portable: CMAKE_ARGS=-DGGML_NATIVE=OFF pip install "
                "--no-cache-dir --force-reinstall llama-cpp-python, or keep -march=native without AMX as scripts/setup.sh "
                "does (README, Installing into your ComfyUI).")
    return (f"llama_cpp backend at {server.base_url}: the llama.cpp server for {server.settings.model_path.name} "
            f"died while answering ({status}).{hint} "
            f"Its log ends with:\n{server.log_tail()}")


def default_threads() -> int:
    """Half the cores, at most 8: ComfyUI and other work keep the rest, and llama.cpp slows down sharply
    when its threads compete for cores (measured on 2 shared cores: 5 tok/s with 2 threads, 71 with 1)."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def server_environment() -> dict[str, str]:
    """The server's environment: OpenMP threads sleep instead of spinning while they wait (unless the user chose
    otherwise), which keeps generation fast on a machine that is busy with other work."""
    return {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}


def missing_server_modules() -> list[str]:
    return [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]


def stop_process(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Terminate, and kill what ignores it for ``grace_s``: a stuck server must never outlive its owner."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace_s)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServerPool:
    """The running servers of this process, keyed by ``ServerSettings.key``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: dict[Path, RunningServer] = {}
        self._leases: dict[Path, int] = {}
        self._stop_when_idle: set[Path] = set()

    def running(self) -> list[RunningServer]:
        with self._lock:
            return [s for s in self._servers.values() if s.process.poll() is None]

    def ensure(self, settings: ServerSettings, startup_timeout: float = 120.0) -> RunningServer:
        """A ready server for ``settings``, reusing a live one with the same settings."""
        with self._lock:
            return self._ensure_locked(settings, startup_timeout)

    @contextlib.contextmanager
    def lease(self, settings: ServerSettings, startup_timeout: float = 120.0) -> Iterator[RunningServer]:
        """A ready server held for one request; an unload meanwhile takes effect when the last lease ends."""
        key = settings.key
        with self._lock:
            server = self._ensure_locked(settings, startup_timeout)
            self._leases[key] = self._leases.get(key, 0) + 1
        try:
            yield server
        except LLMError as exc:
            if server.process.poll() is None:
                raise
            raise LLMError(died_message(server)) from exc
        finally:
            with self._lock:
                self._leases[key] -= 1
                idle = self._leases[key] == 0
                finished = self._servers.pop(key, None) if idle and key in self._stop_when_idle else None
                if idle:
                    self._stop_when_idle.discard(key)
            if finished is not None:
                self._stop(finished)

    def _ensure_locked(self, settings: ServerSettings, startup_timeout: float) -> RunningServer:
        key = settings.key
        server = self._servers.get(key)
        if server is not None and server.process.poll() is None and server.settings == settings:
            return server
        if server is not None:
            self._stop(server)
            del self._servers[key]
        server = self._start(settings, startup_timeout)
        self._servers[key] = server
        return server

    def _start(self, settings: ServerSettings, startup_timeout: float) -> RunningServer:
        missing = missing_server_modules()
        if missing:
            raise LLMConfigError(
                f"the llama_cpp backend needs llama-cpp-python with its server extra in {sys.executable} "
                f"(missing: {', '.join(missing)}); install it with: pip install 'llama-cpp-python[server]', "
                "or choose the rules, openai or ollama backend"
            )
        port = free_port()
        fd, log_name = tempfile.mkstemp(prefix="laser-story-llama-", suffix=".log")
        log_path = Path(log_name)
        with os.fdopen(fd, "wb") as log_file:
            process = subprocess.Popen(
                settings.command(port),
                stdin=subprocess.PIPE,  # never written: its closing tells the child that we are gone
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=server_environment(),
            )
        server = RunningServer(settings, process, port, log_path, open(log_path, "rb"))  # closed in _stop
        if os.name == "posix":
            log_path.unlink()  # the open handles keep it readable; a crash leaves no file behind
        log.info(
            "starting llama.cpp server for %s on 127.0.0.1:%d (pid %d)", settings.model_path.name, port, process.pid
        )
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = server.log_tail()
                self._stop(server)
                raise LLMError(
                    f"the llama.cpp server for {settings.model_path.name} exited with code {process.returncode} "
                    f"while starting; its log ends with:\n{tail}"
                )
            try:
                request_json(f"{server.base_url}/models", what="llama_cpp server", timeout=2.0, retries=0)
            except LLMError:
                time.sleep(0.2)
                continue
            return server
        tail = server.log_tail()
        self._stop(server)
        raise LLMError(
            f"the llama.cpp server for {settings.model_path.name} was not ready within {startup_timeout:g} s; "
            f"its log ends with:\n{tail}"
        )

    @staticmethod
    def _stop(server: RunningServer) -> None:
        if server.process.stdin is not None:
            server.process.stdin.close()
        if server.process.poll() is None:
            stop_process(server.process)
            log.info(
                "stopped the llama.cpp server for %s (pid %d)", server.settings.model_path.name, server.process.pid
            )
        server.log_reader.close()
        server.log_path.unlink(missing_ok=True)

    def stop(self, key: Path) -> bool:
        """Stop the server of one GGUF or adapter (``ServerSettings.key``; once its last lease ends, if requests
        hold it); True when one was running."""
        key = key.resolve()
        with self._lock:
            if self._leases.get(key, 0) > 0:
                self._stop_when_idle.add(key)
                return key in self._servers
            server = self._servers.pop(key, None)
        if server is None:
            return False
        self._stop(server)
        return True

    def stop_all(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            self._stop(server)


POOL = LlamaServerPool()
atexit.register(POOL.stop_all)
