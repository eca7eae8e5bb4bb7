"""Headless demo: start ComfyUI on 127.0.0.1 with laser-story, queue workflows/api/laser_morph.json (an
animation) and workflows/api/canvas_panorama.json (a 128x1024 canvas) over the HTTP API, follow their progress on
the websocket and report what they wrote under output/.

    .venv/bin/python scripts/demo.py [--workflow workflows/api/laser_morph.json ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from comfy_harness import ServerProcess, comfy_root  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflow", type=Path, nargs="+",
                        default=[REPO_ROOT / "workflows" / "api" / f"{name}.json" for name in ("laser_morph", "canvas_panorama")])
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "output", help="ComfyUI output folder")
    opts = parser.parse_args()
    opts.output.mkdir(parents=True, exist_ok=True)
    print(f"starting ComfyUI ({comfy_root()}) on 127.0.0.1 ...", flush=True)
    server = ServerProcess(comfy_root(), REPO_ROOT / ".cache" / "demo-host",
                           extra_args=("--output-directory", str(opts.output.resolve())), with_testing_pack=False)
    try:
        wrote = 0
        for workflow in opts.workflow:
            prompt = json.loads(workflow.read_text())
            print(f"ComfyUI ready at {server.url}; queueing {workflow.name}", flush=True)
            start = time.monotonic()

            def show(kind: str, data: dict, prompt: dict = prompt) -> None:
                if kind == "executing" and data.get("node"):
                    node = prompt[data["node"]]
                    print(f"  running {node.get('_meta', {}).get('title', node['class_type'])}", flush=True)
                elif kind == "progress" and (data["value"] in (data["max"], 1) or data["value"] % 10 == 0):
                    print(f"    {data['value']}/{data['max']}", flush=True)

            history, _ = server.run(prompt, on_message=show)
            elapsed = time.monotonic() - start
            files = [item for output in history["outputs"].values() for key in ("images", "gifs") for item in output.get(key, [])]
            print(f"done in {elapsed:.1f} s (graph run time, server start excluded)")
            for item in files:
                print(f"  wrote {opts.output / item['subfolder'] / item['filename']}")
            wrote += len(files)
        return 0 if wrote else 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
