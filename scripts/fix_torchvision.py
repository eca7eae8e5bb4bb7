"""Make ``import torchvision`` work on the CPU build of torch.

ComfyUI imports torchvision at start-up, but the only torchvision wheels on the package registry are
CUDA builds: their compiled ops cannot load next to CPU torch, and ``torchvision/_meta_registrations.py``
then fails at import with "operator torchvision::nms does not exist" because it registers fake kernels
for ops that were never defined. This script guards those two registrations with torchvision's own
``extension._has_ops()`` check. Everything pure-Python in torchvision (transforms, models) keeps
working; only the compiled ops (nms, roi_align, image decoding) stay unavailable, and no SD1.x/SD2.x
code path uses them. It is idempotent and does nothing when torchvision already imports.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

GUARDED = "if torchvision.extension._has_ops() else (lambda f: f))"
PATTERN = re.compile(r'^@torch\.library\.register_fake\("torchvision::(q?nms)"\)', re.MULTILINE)


def imports_cleanly() -> bool:
    return subprocess.run([sys.executable, "-c", "import torchvision"], capture_output=True).returncode == 0


def main() -> int:
    if imports_cleanly():
        return 0
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        print("fix_torchvision: torchvision is not installed", file=sys.stderr)
        return 1
    target = Path(spec.origin).parent / "_meta_registrations.py"
    source = target.read_text()
    patched = PATTERN.sub(
        lambda m: f'@(torch.library.register_fake("torchvision::{m.group(1)}") {GUARDED}', source
    )
    target.write_text(patched)
    if not imports_cleanly():
        print(f"fix_torchvision: import torchvision still fails after patching {target}", file=sys.stderr)
        return 1
    print(f"fix_torchvision: guarded the nms fake registrations in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
