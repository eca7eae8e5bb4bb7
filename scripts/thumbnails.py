"""Template-browser thumbnails for the shipped UI workflows, rendered from each workflow's own output.

Runs every ``workflows/api/<name>.json`` on a headless ComfyUI and writes ``workflows/<name>.jpg`` (where the
template browser looks for it): four frames of the first animation it saved (or its first saved image, before any
preview), 2 x 2.

    .venv/bin/python scripts/thumbnails.py [name ...]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from comfy_harness import ServerProcess, comfy_root  # noqa: E402

WORKFLOWS = REPO_ROOT / "workflows"
SIDE = 512


def frames_of(data: bytes, n: int = 4) -> list[Image.Image]:
    """Up to ``n`` evenly spaced frames of an image file (one for a still)."""
    with Image.open(io.BytesIO(data)) as im:
        count = getattr(im, "n_frames", 1)
        picks = sorted({round(i * (count - 1) / max(1, n - 1)) for i in range(n)}) if count > 1 else [0]
        out = []
        for k in picks:
            im.seek(k)
            out.append(im.convert("RGB"))
        return out


def thumbnail(frames: list[Image.Image]) -> Image.Image:
    if len(frames) == 1:  # a still: fitted whole (a panorama stays a panorama), on a dark card
        still = frames[0]
        scale = SIDE / max(still.size)
        fitted = still.resize((max(1, round(still.width * scale)), max(1, round(still.height * scale))), Image.Resampling.LANCZOS)
        card = Image.new("RGB", (SIDE, SIDE), (24, 24, 24))
        card.paste(fitted, ((SIDE - fitted.width) // 2, (SIDE - fitted.height) // 2))
        return card
    cell = SIDE // 2
    sheet = Image.new("RGB", (SIDE, SIDE))
    for i, frame in enumerate(frames[:4]):
        sheet.paste(frame.resize((cell, cell), Image.Resampling.NEAREST), ((i % 2) * cell, (i // 2) * cell))
    return sheet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="workflow names (default: every UI workflow)")
    names = parser.parse_args().names or sorted(p.stem for p in WORKFLOWS.glob("*.json"))
    server = ServerProcess(comfy_root(), Path(tempfile.mkdtemp(prefix="laser-story-thumbs-")), with_testing_pack=False)
    try:
        for name in names:
            history, _ = server.run(json.loads((WORKFLOWS / "api" / f"{name}.json").read_text()), timeout=1800)
            saved = [item for out in history["outputs"].values() for item in out.get("images", [])]
            if not saved:
                raise SystemExit(f"{name}: the workflow saved no image to make a thumbnail from")
            item = min(saved, key=lambda i: i["type"] != "output")  # a saved result before any preview
            data = server.get("/view", filename=item["filename"], subfolder=item["subfolder"], type=item["type"])
            path = WORKFLOWS / f"{name}.jpg"
            thumbnail(frames_of(data)).save(path, quality=90)
            print(f"wrote {path.relative_to(REPO_ROOT)} from {item['filename']}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
