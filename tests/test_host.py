"""The pack inside a real ComfyUI: registration, isolation of broken modules, a core graph end to end."""

from __future__ import annotations

import pytest
from comfy_harness import tiny_txt2img

pytestmark = pytest.mark.host


def test_core_ksampler_graph_runs_in_process(comfy_host):
    outputs = comfy_host.run(tiny_txt2img())
    images = outputs["7"]["images"]
    assert len(images) == 1 and images[0]["filename"].endswith(".png")


def test_pack_registers_prefixed_nodes_without_failures(comfy_host):
    pack = comfy_host.pack_module
    assert pack.FAILED_NODE_MODULES == {}
    assert pack.NODE_CLASS_MAPPINGS, "the pack registered no nodes"
    for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
        assert node_id.startswith("LaserStory")
        assert cls.CATEGORY.startswith("laser-story/")
        assert node_id in comfy_host.nodes.NODE_CLASS_MAPPINGS


def test_llm_model_folder_is_registered(comfy_host):
    fp = comfy_host.folder_paths
    assert str(comfy_host.base / "models" / "LLM") in fp.get_folder_paths("LLM"), "derived from --base-directory"


def test_a_broken_node_module_disables_only_itself(comfy_host, tmp_path, caplog):
    """One extra node module whose dependency is missing is reported; every other node still registers."""
    import logging

    import laser_story.nodes

    (tmp_path / "needs_missing_dependency.py").write_text("import laser_story_no_such_dependency  # noqa: F401\n")
    laser_story.nodes.__path__.append(str(tmp_path))
    try:
        with caplog.at_level(logging.WARNING):
            found = laser_story.nodes.load_node_modules()
    finally:
        laser_story.nodes.__path__.remove(str(tmp_path))
    assert set(found.failed_node_modules) == {"needs_missing_dependency"}
    assert "No module named 'laser_story_no_such_dependency'" in found.failed_node_modules["needs_missing_dependency"]
    assert set(found.node_class_mappings) == set(comfy_host.pack_module.NODE_CLASS_MAPPINGS)
    assert any("needs_missing_dependency" in r.getMessage() and "laser_story_no_such_dependency" in r.getMessage()
               for r in caplog.records)


def test_one_module_identity(comfy_host):
    """ComfyUI's copy of the pack and the tests import the same modules: no top-level llm/attention/tinyworld."""
    import importlib.util
    import sys

    from laser_story.attention import morph
    from laser_story.llm.tasks import REGISTRY

    for name in ("llm", "attention", "tinyworld", "training"):
        assert importlib.util.find_spec(name) is None, f"{name} is importable as a top-level package"
    copies = [m for m in sys.modules if m.endswith(".attention.morph")]
    assert copies == ["laser_story.attention.morph"], copies
    node_module = sys.modules[comfy_host.nodes.NODE_CLASS_MAPPINGS["LaserStoryMorphInterpolator"].__module__]
    assert node_module.run_morph is morph.run_morph
    planner_module = sys.modules[comfy_host.nodes.NODE_CLASS_MAPPINGS["LaserStoryLLMPlanner"].__module__]
    assert planner_module.REGISTRY is REGISTRY
