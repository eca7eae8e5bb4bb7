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
    """A copy of the pack with one extra module whose dependency is missing still registers every other node."""
    import asyncio
    import logging

    from comfy_harness import REPO_ROOT

    pack = tmp_path / "laser-story-copy"
    pack.mkdir()
    for item in REPO_ROOT.iterdir():
        if item.name not in ("nodes", ".git", ".venv", ".host", ".cache"):
            (pack / item.name).symlink_to(item)
    (pack / "nodes").mkdir()
    for module in (REPO_ROOT / "nodes").glob("*.py"):
        (pack / "nodes" / module.name).symlink_to(module)
    (pack / "nodes" / "needs_missing_dependency.py").write_text("import laser_story_no_such_dependency  # noqa: F401\n")

    registered = dict(comfy_host.nodes.NODE_CLASS_MAPPINGS)
    try:
        with caplog.at_level(logging.WARNING):
            assert asyncio.run(comfy_host.nodes.load_custom_node(str(pack), module_parent="custom_nodes"))
        import sys

        copy = sys.modules[str(pack).replace(".", "_x_")]
        assert set(copy.FAILED_NODE_MODULES) == {"needs_missing_dependency"}
        assert "No module named 'laser_story_no_such_dependency'" in copy.FAILED_NODE_MODULES["needs_missing_dependency"]
        assert set(copy.NODE_CLASS_MAPPINGS) == set(comfy_host.pack_module.NODE_CLASS_MAPPINGS)
        assert any("needs_missing_dependency" in r.getMessage() and "laser_story_no_such_dependency" in r.getMessage()
                   for r in caplog.records)
    finally:
        comfy_host.nodes.NODE_CLASS_MAPPINGS.clear()
        comfy_host.nodes.NODE_CLASS_MAPPINGS.update(registered)
