"""Find and import ComfyUI for the command-line tools (training, evaluation, benchmarks).

Inside a running ComfyUI nothing happens: ``comfy`` is already imported. From a checkout, the host is
looked for in ``$COMFYUI_PATH``, then ``<repo>/.host/ComfyUI`` (what ``make setup`` installs), then the
ComfyUI root two levels above the pack (``ComfyUI/custom_nodes/laser-story``).
"""

from __future__ import annotations

import os
import sys

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # src/laser_story
REPO_ROOT = os.path.dirname(os.path.dirname(PACKAGE_ROOT))


def auto_threads() -> int:
    """2 torch threads on an idle machine, 1 when the CPU is busy (oversubscribed OpenMP threads crawl)."""
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(2, cores)) if load < 0.5 * cores else 1


def ensure_comfy(cpu: bool = True, threads: int | None = None) -> None:
    """Make ``import comfy.*`` work; force CPU before ``comfy.model_management`` is first imported."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    if "comfy.model_management" in sys.modules:
        return
    try:
        import comfy.options  # noqa: F401
    except ImportError:
        candidates = [os.environ.get("COMFYUI_PATH", ""), os.path.join(REPO_ROOT, ".host", "ComfyUI"),
                      os.path.dirname(os.path.dirname(REPO_ROOT))]
        for path in candidates:
            if path and os.path.isfile(os.path.join(path, "comfy", "options.py")):
                sys.path.insert(0, path)
                break
        else:
            raise ImportError(
                "ComfyUI not found: set COMFYUI_PATH to a ComfyUI checkout (0.3.75 or newer) or run `make setup`"
            ) from None
        import comfy.options  # noqa: F401
    from comfy.cli_args import args

    if cpu:
        args.cpu = True
    import logging

    import comfy.model_management  # noqa: F401

    logging.getLogger().setLevel(logging.ERROR if not os.environ.get("TINYWORLD_VERBOSE") else logging.INFO)
