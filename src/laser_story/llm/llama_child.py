"""Entry point of the pack's llama.cpp server process: ``python llama_child.py <llama_cpp.server arguments>``.

It runs ``llama_cpp.server`` unchanged, plus one thread that waits for its stdin to close. The parent holds the
other end of that pipe and never writes to it, so when ComfyUI exits in any way (including a crash or SIGKILL,
where ``atexit`` never runs) the pipe closes and the server exits too instead of lingering with the model in
memory. Run as a script by path, so it imports nothing from this package.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading


def _exit_with_parent() -> None:
    sys.stdin.buffer.read()  # returns at end of file: the parent is gone
    os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=_exit_with_parent, name="exit-with-parent", daemon=True).start()
    sys.argv = ["llama_cpp.server", *sys.argv[1:]]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
