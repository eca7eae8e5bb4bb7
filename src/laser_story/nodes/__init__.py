"""The ComfyUI side of the pack: one module per feature, each imported on its own.

A module whose optional dependency is missing or broken disables only its own nodes, and the reason is
logged. Loading installs nothing and opens no network connection. Every module here may import ComfyUI at
import time; nothing outside this package does.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import pkgutil

logger = logging.getLogger("laser_story")

MIN_COMFYUI = (0, 3, 75)
LLM_FOLDER = "LLM"
LLM_EXTENSIONS = {".gguf", ".safetensors", ".bin", ".json"}
FUSER_FOLDER = "char_fuser"  # Char-LDM fusers: this pack's safetensors or a FastComposer / StoryGPT-V checkpoint
FUSER_EXTENSIONS = {".safetensors", ".bin", ".pt"}


@dataclasses.dataclass
class Registration:
    """What the pack hands ComfyUI, and which node modules could not be imported (name -> reason)."""

    node_class_mappings: dict[str, type] = dataclasses.field(default_factory=dict)
    node_display_name_mappings: dict[str, str] = dataclasses.field(default_factory=dict)
    failed_node_modules: dict[str, str] = dataclasses.field(default_factory=dict)


def check_host() -> None:
    """Fail fast, with the fix, on a ComfyUI without the patch and wrapper APIs the pack relies on."""
    import comfy.patcher_extension

    if not hasattr(comfy.patcher_extension.WrappersMP, "OUTER_SAMPLE"):
        version = ".".join(map(str, MIN_COMFYUI))
        raise RuntimeError(
            f"laser-story needs ComfyUI {version} or newer (comfy.patcher_extension.WrappersMP.OUTER_SAMPLE is missing); "
            "update ComfyUI."
        )


def register_folder(name: str, extensions: set[str]) -> None:
    """``models/<name>`` as a ComfyUI model folder (extra_model_paths may add more)."""
    import folder_paths

    default = os.path.join(folder_paths.models_dir, name)
    if name in folder_paths.folder_names_and_paths:
        paths, known = folder_paths.folder_names_and_paths[name]
        if default not in paths:
            paths.append(default)
        if known:
            known.update(extensions)
    else:
        folder_paths.folder_names_and_paths[name] = ([default], set(extensions))


def register_llm_folder() -> None:
    """``models/LLM`` for GGUF / safetensors files and HF-style model folders, and the pack's own folder with the
    tuned planner adapter, so it is offered beside the base model without copying it anywhere."""
    import folder_paths

    from ..llm.config import PACK_LLM_DIR

    register_folder(LLM_FOLDER, LLM_EXTENSIONS)
    paths = folder_paths.folder_names_and_paths[LLM_FOLDER][0]
    if PACK_LLM_DIR not in paths:
        paths.append(PACK_LLM_DIR)


def load_node_modules() -> Registration:
    """Import every module of this package (in name order), each in isolation."""
    found = Registration()
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{__name__}.{info.name}")
        except Exception as exc:  # one broken module must not take the others down
            found.failed_node_modules[info.name] = f"{type(exc).__name__}: {exc}"
            logger.warning("laser-story: nodes/%s.py disabled: %s: %s", info.name, type(exc).__name__, exc)
            continue
        found.node_class_mappings.update(getattr(module, "NODE_CLASS_MAPPINGS", {}))
        found.node_display_name_mappings.update(getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", {}))
    return found


def register() -> Registration:
    """Everything ComfyUI's loader needs, after checking the host."""
    check_host()
    register_llm_folder()
    register_folder(FUSER_FOLDER, FUSER_EXTENSIONS)
    return load_node_modules()
