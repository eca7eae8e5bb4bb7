"""laser-story: ComfyUI entry point.

Every ``nodes/*.py`` module is imported on its own: a module whose optional dependency is missing or
broken disables only its own nodes, and the reason is logged. Importing the pack installs nothing and
opens no network connection.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import pkgutil

logger = logging.getLogger("laser_story")

MIN_COMFYUI = (0, 3, 75)
LLM_FOLDER = "LLM"
LLM_EXTENSIONS = {".gguf", ".safetensors", ".bin", ".json"}

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
FAILED_NODE_MODULES: dict[str, str] = {}


def _check_host() -> None:
    """Fail fast, with the fix, on a ComfyUI without the patch and wrapper APIs the pack relies on."""
    import comfy.patcher_extension

    if not hasattr(comfy.patcher_extension.WrappersMP, "OUTER_SAMPLE"):
        version = ".".join(map(str, MIN_COMFYUI))
        raise RuntimeError(
            f"laser-story needs ComfyUI {version} or newer (comfy.patcher_extension.WrappersMP.OUTER_SAMPLE is missing); "
            "update ComfyUI."
        )


def _register_llm_folder() -> None:
    """``models/LLM`` for GGUF / safetensors files and HF-style model folders (extra_model_paths may add more)."""
    import folder_paths

    default = os.path.join(folder_paths.models_dir, LLM_FOLDER)
    if LLM_FOLDER in folder_paths.folder_names_and_paths:
        paths, extensions = folder_paths.folder_names_and_paths[LLM_FOLDER]
        if default not in paths:
            paths.append(default)
        if extensions:
            extensions.update(LLM_EXTENSIONS)
    else:
        folder_paths.folder_names_and_paths[LLM_FOLDER] = ([default], set(LLM_EXTENSIONS))


def _load_node_modules() -> None:
    package_dir = os.path.join(os.path.dirname(__file__), "nodes")
    for info in sorted(pkgutil.iter_modules([package_dir]), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f".nodes.{info.name}", __name__)
        except Exception as exc:  # one broken module must not take the others down
            FAILED_NODE_MODULES[info.name] = f"{type(exc).__name__}: {exc}"
            logger.warning("laser-story: nodes/%s.py disabled: %s: %s", info.name, type(exc).__name__, exc)
            continue
        NODE_CLASS_MAPPINGS.update(getattr(module, "NODE_CLASS_MAPPINGS", {}))
        NODE_DISPLAY_NAME_MAPPINGS.update(getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", {}))


# Outside a ComfyUI process (a test collector importing the repository root) there is nothing to register.
if importlib.util.find_spec("comfy") is not None:
    _check_host()
    _register_llm_folder()
    _load_node_modules()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
