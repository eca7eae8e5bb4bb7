"""scripts/setup.sh refuses bad environments before installing anything, with a one-line reason."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from comfy_harness import REPO_ROOT

SETUP = REPO_ROOT / "scripts" / "setup.sh"


def run_setup(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SETUP)], env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def test_comfyui_path_that_is_not_comfyui_is_refused(tmp_path):
    result = run_setup(tmp_path, COMFYUI_PATH=str(tmp_path), SKIP_LLM="1")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"COMFYUI_PATH={tmp_path} is not a ComfyUI folder: expected main.py, nodes.py, folder_paths.py and comfy/" in lines[0]


def test_unsupported_python_is_refused_with_the_supported_versions(tmp_path):
    fake = tmp_path / "python3.9"
    fake.write_text('#!/bin/sh\nif [ "$1" = "-c" ]; then echo 3.9; exit 0; fi\nexit 1\n')
    fake.chmod(0o755)
    result = run_setup(tmp_path, PYTHON=str(fake))
    assert result.returncode != 0
    assert "Python 3.9 is not supported; use Python 3.10, 3.11 or 3.12" in result.stderr


def test_missing_python_is_refused(tmp_path):
    result = run_setup(tmp_path, PYTHON=str(tmp_path / "no-python"))
    assert result.returncode != 0
    assert "not found; install Python 3.10, 3.11 or 3.12" in result.stderr
