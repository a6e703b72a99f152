"""`GET /api/v1/lists`: every list source's real state for the dashboard's list page.

Last success, last error, rules serving, whether a list serves from its last good copy, and
"never fetched" said as such (`resolver.update.status`), instead of a file time that calls a
list nobody ever downloaded "5 minutes" old.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp import web

from resolver.http.admin_keys import CONFIG
from resolver.http.history import category_names
from resolver.update.status import list_status

API = "/api/v1"


def setup_list_status(app: web.Application) -> None:
    app.router.add_get(f"{API}/lists", lists)


async def lists(request: web.Request) -> web.Response:
    snapshot = request.app[CONFIG].control.policy_snapshot()
    if snapshot is None:
        return web.json_response({"now": time.time(), "lists": [], "category_names": {}})
    rows = await asyncio.to_thread(
        list_status, Path(snapshot.source), list(snapshot.categories), snapshot.sources
    )
    return web.json_response({
        "now": time.time(),
        "generation": snapshot.generation,
        "lists": rows,
        "category_names": category_names({row["category"] for row in rows}),
    })  # fmt: skip
