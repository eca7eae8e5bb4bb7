"""Every shipped workflow in the real ComfyUI frontend (headless Chromium against a real server): it is in the
template browser with its thumbnail, loads with no missing node, each widget value sits on the widget of that
name, ``graphToPrompt()`` equals the API twin, and a Run from the page finishes with every result visible on its
node. Screenshots go to ``LASER_STORY_ARTIFACTS`` (default ``.cache/test-artifacts``)/frontend."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from comfy_harness import PACK_DIR_NAME, REPO_ROOT, ServerProcess
from frontend import (
    browser_path,
    load_graph,
    node_previews,
    open_frontend,
    open_template,
    run_from_page,
    screenshot,
    workflow_problems,
)
from PIL import Image

WORKFLOWS = REPO_ROOT / "workflows"
UI_WORKFLOWS = sorted(p.stem for p in WORKFLOWS.glob("*.json"))
ARTIFACTS = Path(os.environ.get("LASER_STORY_ARTIFACTS", REPO_ROOT / ".cache" / "test-artifacts")) / "frontend"


def read_workflow(path: Path) -> dict:
    """A workflow file's JSON; a file that is not JSON fails naming the file and the place."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path.name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc


@pytest.fixture(scope="module")
def frontend_server(comfy_path, tmp_path_factory):
    if os.environ.get("SKIP_BROWSER") == "1":
        pytest.skip("SKIP_BROWSER=1")
    if browser_path() is None:
        pytest.fail("no Chromium: `make setup` installs Debian's chromium package (or set LASER_STORY_CHROMIUM)")
    base = tmp_path_factory.mktemp("comfy-frontend")
    settings = base / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}))  # no first-run dialog over the canvas
    server = ServerProcess(comfy_path, base, with_testing_pack=False)
    yield server
    server.stop()


def test_every_ui_workflow_has_its_api_twin_and_thumbnail():
    assert UI_WORKFLOWS, "the pack ships UI workflows"
    for name in UI_WORKFLOWS:
        read_workflow(WORKFLOWS / f"{name}.json")
        assert (WORKFLOWS / "api" / f"{name}.json").is_file(), f"{name}.json has no API twin in workflows/api/"
        assert (WORKFLOWS / f"{name}.jpg").is_file(), f"{name}.json has no thumbnail: run scripts/thumbnails.py"


@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_workflow_loads_runs_and_shows_its_results_in_the_browser(frontend_server, name):
    ui = read_workflow(WORKFLOWS / f"{name}.json")
    api = read_workflow(WORKFLOWS / "api" / f"{name}.json")
    assert name in frontend_server.get_json("/workflow_templates")[PACK_DIR_NAME]
    with open_frontend(frontend_server.url) as (page, log):
        card = open_template(page, PACK_DIR_NAME, name)
        assert log.served.get(f"/api/workflow_templates/{PACK_DIR_NAME}/{name}.jpg") == 200, "the thumbnail is served"
        with Image.open(WORKFLOWS / f"{name}.jpg") as thumb:
            assert (card["width"], card["height"]) == thumb.size, "the card shows the shipped thumbnail"
        assert workflow_problems(page, f"{name}.json", ui, api) == []
        screenshot(page, ARTIFACTS, f"{name}-loaded")

        entry = run_from_page(page, frontend_server)
        assert entry["status"]["status_str"] == "success", entry["status"]
        outputs = entry["outputs"]
        assert outputs, "the run produced outputs"
        page.wait_for_function(
            """ids => ids.every(([id, kind]) => { const n = app.graph.getNodeById(Number(id)); if (!n) return false;
                 const view = name => (n.widgets || []).find(w => w.name === name);
                 if (kind === 'gifs') { const g = view('laser_story_gif'); return g && g.element.complete && g.element.naturalWidth > 0; }
                 if (kind === 'text') { const t = view('laser_story_result'); return t && t.element.value.length > 0; }
                 const a = view('$$comfy_animation_preview');
                 return (n.imgs || []).length > 0 || (a && a.element.querySelector('img')?.naturalWidth > 0); })""",
            arg=[[node_id, kind] for node_id, out in outputs.items() for kind in out if kind in ("images", "gifs", "text")],
            timeout=60_000)
        shown = node_previews(page)
        for node_id, out in outputs.items():
            view = shown[node_id]
            if "images" in out:
                assert view["images"] > 0, f"node {node_id} ({view['type']}) shows no image"
            if "gifs" in out:
                assert view["gif"]["loaded"] and out["gifs"][0]["filename"] in view["gif"]["src"], view
            if "text" in out:
                assert view["text"] == "\n\n".join(out["text"]), f"node {node_id} ({view['type']}) shows other text"
        screenshot(page, ARTIFACTS, f"{name}-finished")
        assert workflow_problems(page, f"{name}.json", ui, api) == [], "the result views are not part of the graph"
        assert log.pack_errors() == []


def test_broken_workflows_fail_naming_the_file_node_and_widget(frontend_server, tmp_path):
    name = UI_WORKFLOWS[0]
    ui = read_workflow(WORKFLOWS / f"{name}.json")
    api = read_workflow(WORKFLOWS / "api" / f"{name}.json")
    node = next(n for n in ui["nodes"] if n["type"].startswith("LaserStory") and n.get("widgets_values"))
    node_id = str(node["id"])

    gone_node = json.loads(json.dumps(ui))
    next(n for n in gone_node["nodes"] if n["id"] == node["id"])["type"] = "LaserStoryNodeThatWasRemoved"
    broken = tmp_path / "gone_node.json"
    broken.write_text(json.dumps(gone_node))

    widget = next(k for k, v in api[node_id]["inputs"].items() if not isinstance(v, list))
    gone_widget = json.loads(json.dumps(api))
    gone_widget[node_id]["inputs"]["renamed_" + widget] = gone_widget[node_id]["inputs"].pop(widget)

    with open_frontend(frontend_server.url) as (page, _log):
        load_graph(page, read_workflow(broken))
        problems = workflow_problems(page, broken.name, gone_node, api)
        assert any(p.startswith("gone_node.json: node") and "'LaserStoryNodeThatWasRemoved'" in p for p in problems), problems
        assert any("missing-node dialog" in p for p in problems), problems
    with open_frontend(frontend_server.url) as (page, _log):
        load_graph(page, ui)
        problems = workflow_problems(page, f"{name}.json", ui, gone_widget)
        assert problems == [f"{name}.json: node {node_id} ({node['type']}) has no widget 'renamed_{widget}'"]

    not_json = tmp_path / "not_json.json"
    not_json.write_text('{"nodes": [')
    with pytest.raises(ValueError, match=r"not_json\.json: not valid JSON \(line 1"):
        read_workflow(not_json)
