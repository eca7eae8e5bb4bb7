"""Headless demo: start ComfyUI on 127.0.0.1 with laser-story, queue workflows/api/laser_morph.json over
the HTTP API, follow its progress on the websocket and report the animation it wrote under output/.

    .venv/bin/python scripts/demo.py [--workflow workflows/api/laser_morph.json]
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
    parser.add_argument("--workflow", type=Path, default=REPO_ROOT / "workflows" / "api" / "laser_morph.json")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "output", help="ComfyUI output folder")
    opts = parser.parse_args()
    prompt = json.loads(opts.workflow.read_text())
    opts.output.mkdir(parents=True, exist_ok=True)
    print(f"starting ComfyUI ({comfy_root()}) on 127.0.0.1 ...", flush=True)
    server = ServerProcess(comfy_root(), REPO_ROOT / ".cache" / "demo-host",
                           extra_args=("--output-directory", str(opts.output.resolve())), with_testing_pack=False)
    try:
        print(f"ComfyUI ready at {server.url}; queueing {opts.workflow.relative_to(REPO_ROOT)}", flush=True)
        start = time.monotonic()

        def show(kind: str, data: dict) -> None:
            if kind == "executing" and data.get("node"):
                node = prompt[data["node"]]
                print(f"  running {node.get('_meta', {}).get('title', node['class_type'])}", flush=True)
            elif kind == "progress" and data["value"] in (data["max"], 1) or kind == "progress" and data["value"] % 10 == 0:
                print(f"    {data['value']}/{data['max']}", flush=True)

        history, _ = server.run(prompt, on_message=show)
        elapsed = time.monotonic() - start
        files = [image for output in history["outputs"].values() for image in output.get("images", [])]
        print(f"done in {elapsed:.1f} s (graph run time, server start excluded)")
        for item in files:
            print(f"  wrote {opts.output / item['subfolder'] / item['filename']}")
        return 0 if files else 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
