"""laser-story: ComfyUI entry point.

The pack's code is one package, ``laser_story``, under ``src/``. This file makes that folder importable
and registers the nodes, so ComfyUI, the tests, the benchmarks and the command-line tools all use the
same modules under the same name, whatever folder the pack was cloned into.
"""

from __future__ import annotations

import importlib.util
import os
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src")


def _import_package():
    if SRC not in sys.path:
        sys.path.insert(0, SRC)
    import laser_story

    found = os.path.dirname(os.path.dirname(os.path.abspath(laser_story.__file__)))
    if os.path.realpath(found) != os.path.realpath(SRC):
        raise ImportError(
            f"laser-story is installed twice: this copy is {os.path.dirname(SRC)}, but the package was already "
            f"imported from {os.path.dirname(found)}. Remove one of the two folders from custom_nodes."
        )
    return laser_story


_import_package()

NODE_CLASS_MAPPINGS: dict[str, type] = {}
WEB_DIRECTORY = "./web"  # the frontend extension that shows plans, frame info and GIFs on their nodes
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
FAILED_NODE_MODULES: dict[str, str] = {}

# Outside a ComfyUI process (a test collector importing the repository root) there is nothing to register.
if importlib.util.find_spec("comfy") is not None:
    from laser_story.nodes import register

    _registration = register()
    NODE_CLASS_MAPPINGS.update(_registration.node_class_mappings)
    NODE_DISPLAY_NAME_MAPPINGS.update(_registration.node_display_name_mappings)
    FAILED_NODE_MODULES.update(_registration.failed_node_modules)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
