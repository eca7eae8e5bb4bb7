"""``GET /laser-story/status``: what the pack holds in this ComfyUI process right now, for whoever runs the
server: feature banks still holding features (none between runs) and the local llama.cpp servers it started."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from server import PromptServer

from ..attention.state import FeatureBank
from ..llm.llama_server import POOL

ROUTE = "/laser-story/status"


def status() -> dict[str, Any]:
    banks, banked = FeatureBank.holding()
    return {
        "feature_banks_holding": banks,
        "feature_bank_bytes": banked,
        "llm_servers": [{"model": s.settings.model_path.name, "pid": s.process.pid, "port": s.port} for s in POOL.running()],
    }


async def get_status(request: web.Request) -> web.Response:
    return web.json_response(status())


# Only a real server has routes (the test harness' in-process host does not).
_routes = getattr(getattr(PromptServer, "instance", None), "routes", None)
if _routes is not None:
    _routes.get(ROUTE)(get_status)
