"""Convert between ComfyUI's two workflow formats with the node definitions from ``/object_info``.

The server only executes API-format graphs; the frontend saves and loads UI-format ones (what users drag
and drop). ``workflows/*.json`` are UI format and ``workflows/api/*.json`` their API twins; this keeps them
in step. Widget values follow the frontend's rules: widget inputs in definition order (required, then
optional), plus one extra value after every input with ``control_after_generate``.

    .venv/bin/python scripts/workflow_formats.py workflows/api/laser_morph.json workflows/laser_morph.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def _input_specs(node_def: dict) -> list[tuple[str, Any, dict]]:
    specs = []
    for section in ("required", "optional"):
        for name in node_def["input_order"].get(section, []):
            spec = node_def["input"][section][name]
            specs.append((name, spec[0], spec[1] if len(spec) > 1 else {}))
    return specs


def _is_widget(kind: Any, options: dict) -> bool:
    return (isinstance(kind, list) or kind in WIDGET_TYPES) and not options.get("forceInput")


def ui_from_api(api: dict, object_info: dict) -> dict:
    """A drag-and-drop UI workflow laid out left to right in execution order."""
    order = _topological(api)
    nodes, links = [], []
    out_links: dict[tuple[int, int], list[int]] = {}
    column: dict[str, int] = {}
    for node_id in order:
        deps = [column[v[0]] for v in api[node_id]["inputs"].values() if isinstance(v, list)]
        column[node_id] = max(deps, default=-1) + 1
    rows: dict[int, int] = {}
    for position, node_id in enumerate(order):
        node = api[node_id]
        definition = object_info[node["class_type"]]
        inputs, widgets = [], []
        for name, kind, options in _input_specs(definition):
            value = node["inputs"].get(name)
            if isinstance(value, list):
                link_id = len(links) + 1
                links.append([link_id, int(value[0]), value[1], int(node_id), len(inputs), kind])
                out_links.setdefault((int(value[0]), value[1]), []).append(link_id)
                inputs.append({"name": name, "type": kind, "link": link_id})
            elif _is_widget(kind, options):
                widgets.append(value if value is not None else options.get("default", ""))
                if options.get("control_after_generate"):
                    widgets.append("fixed")
            else:
                inputs.append({"name": name, "type": kind, "link": None})
        col = column[node_id]
        row = rows.get(col, 0)
        rows[col] = row + 1
        nodes.append({
            "id": int(node_id), "type": node["class_type"], "pos": [40 + 380 * col, 40 + 320 * row], "size": [340, 260],
            "flags": {}, "order": position, "mode": 0, "inputs": inputs,
            "outputs": [{"name": name, "type": kind, "links": [], "slot_index": slot}
                        for slot, (name, kind) in enumerate(zip(definition["output_name"], definition["output"], strict=True))],
            "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": widgets,
        } | ({"title": node["_meta"]["title"]} if node.get("_meta", {}).get("title") else {}))
    for node in nodes:
        for output in node["outputs"]:
            output["links"] = out_links.get((node["id"], output["slot_index"]), [])
    return {"last_node_id": max(int(i) for i in api), "last_link_id": len(links), "nodes": nodes, "links": links,
            "groups": [], "config": {}, "extra": {}, "version": 0.4}


def api_from_ui(ui: dict, object_info: dict) -> dict:
    """The API graph a UI workflow queues (what the frontend's graphToPrompt produces)."""
    links = {link[0]: link for link in ui["links"]}
    api = {}
    for node in ui["nodes"]:
        definition = object_info[node["type"]]
        linked = {i["name"]: links[i["link"]] for i in node.get("inputs", []) if i.get("link") is not None}
        values = iter(node.get("widgets_values", []))
        inputs: dict[str, Any] = {}
        for name, kind, options in _input_specs(definition):
            if name in linked:
                inputs[name] = [str(linked[name][1]), linked[name][2]]
                continue
            if _is_widget(kind, options):
                inputs[name] = next(values)
                if options.get("control_after_generate"):
                    next(values)
        api[str(node["id"])] = {"class_type": node["type"], "inputs": inputs} | (
            {"_meta": {"title": node["title"]}} if node.get("title") else {})
    return api


def _topological(api: dict) -> list[str]:
    done: list[str] = []

    def visit(node_id: str) -> None:
        if node_id in done:
            return
        for value in api[node_id]["inputs"].values():
            if isinstance(value, list):
                visit(value[0])
        done.append(node_id)

    for node_id in sorted(api, key=int):
        visit(node_id)
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("api", type=Path, help="API-format workflow to read")
    parser.add_argument("ui", type=Path, help="UI-format workflow to write")
    opts = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import tempfile

    from comfy_harness import ServerProcess, comfy_root

    with tempfile.TemporaryDirectory() as base:
        server = ServerProcess(comfy_root(), Path(base), with_testing_pack=False)
        try:
            object_info = server.get_json("/object_info")
        finally:
            server.stop()
    api = json.loads(opts.api.read_text())
    opts.ui.write_text(json.dumps(ui_from_api(api, object_info), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
