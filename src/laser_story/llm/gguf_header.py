"""The few GGUF header values the pack checks before it starts a server: which architecture a file is for, its width,
and whether it is a LoRA adapter.

A streaming read that stops as soon as it has the keys asked for: ``gguf.GGUFReader`` parses the whole header,
the 262k-token vocabulary included, which takes seconds on a small CPU, on every plan.
"""

from __future__ import annotations

import functools
import struct
from pathlib import Path
from typing import Any, BinaryIO

SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
STRING, ARRAY = 8, 9


class GGUFHeaderError(ValueError):
    """Not a GGUF file, or one cut short."""


def _read(f: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize("<" + fmt)
    data = f.read(size)
    if len(data) != size:
        raise GGUFHeaderError("the file ends inside its header")
    return struct.unpack("<" + fmt, data)[0]


def _string(f: BinaryIO) -> str:
    n = _read(f, "Q")
    return f.read(n).decode("utf-8", errors="replace")


def _value(f: BinaryIO, kind: int, keep: bool) -> Any:
    if kind in SCALARS:
        return _read(f, SCALARS[kind])
    if kind == STRING:
        return _string(f)
    if kind == ARRAY:
        item, n = _read(f, "I"), _read(f, "Q")
        if item in SCALARS and not keep:
            f.seek(n * struct.calcsize("<" + SCALARS[item]), 1)
            return None
        values = [_value(f, item, keep) for _ in range(n)]
        return values if keep else None
    raise GGUFHeaderError(f"unknown value type {kind}")


@functools.lru_cache(maxsize=32)
def _header(path: str, _size: int, _mtime: float, wanted: tuple[str, ...]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise GGUFHeaderError(f"{Path(path).name} is not a GGUF file")
        _version, _tensors, n_kv = _read(f, "I"), _read(f, "Q"), _read(f, "Q")
        for _ in range(n_kv):
            key = _string(f)
            value = _value(f, _read(f, "I"), keep=key in wanted)
            if key in wanted:
                found[key] = value
                if len(found) == len(wanted):
                    break
    return found


def header_values(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """The values of ``keys`` that ``path``'s header holds (cached per file version)."""
    stat = path.stat()
    return dict(_header(str(path), stat.st_size, stat.st_mtime, tuple(sorted(keys))))


def adapter_problem(adapter: Path, base: Path) -> str | None:
    """Why the LoRA ``adapter`` cannot run on ``base`` (not an adapter, or made for another architecture), or None."""
    a = header_values(adapter, ("general.type", "general.architecture", "general.base_model.0.name"))
    b = header_values(base, ("general.architecture",))
    if a.get("general.type") != "adapter":
        return f"{adapter.name} is not a LoRA adapter GGUF (its general.type is {a.get('general.type')!r})"
    if a.get("general.architecture") != b.get("general.architecture"):
        made_for = a.get("general.base_model.0.name") or a.get("general.architecture")
        return (
            f"the adapter {adapter.name} was made for a {a.get('general.architecture')} model ({made_for}) and does not "
            f"match the base model {base.name} ({b.get('general.architecture')})"
        )
    return None
