"""Disk cache of accepted LLM replies, so a re-queued graph (or a restarted ComfyUI) makes no LLM call.

The key is the sha256 of everything that determines a reply: backend, model, messages, schema, seed and
sampling settings. The cache stores the accepted raw reply, not the plan, so a hit still goes through the
current validator and a changed normaliser can never serve a stale plan.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CACHE_ENV = "LASER_STORY_LLM_CACHE"


def cache_key(parts: dict[str, Any]) -> str:
    """Stable sha256 of a JSON-compatible description of one LLM request."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def resolve_cache_dir(default: str | os.PathLike[str] | None) -> Path | None:
    """The cache folder: ``$LASER_STORY_LLM_CACHE`` when set, else ``default`` (None disables caching)."""
    override = os.environ.get(CACHE_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    return None if default is None else Path(default)


class DiskCache:
    """One small JSON file per key, written atomically so a crash never leaves half a file."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # unreadable, not UTF-8, not JSON: a miss, rewritten on the next put
            log.warning("ignoring unreadable LLM cache entry %s (%s)", path, exc)
            return None
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False, suffix=".tmp") as f:
                json.dump(value, f, ensure_ascii=False)
            os.replace(f.name, path)
        except OSError as exc:
            log.warning("could not write the LLM cache entry %s (%s); the next run will ask the model again", path, exc)
