"""Fixtures for the dashboard tests: a school's dashboard with real data (dash_support.py)."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "http"))  # web_support
sys.path.insert(0, str(HERE.parent / "browser"))  # the Chromium set-up

from dash_support import (  # noqa: E402
    GOOD_LIST,
    REPORTS,
    Dash,
    PolicyControl,
    fetch_lists,
    fill_querylog,
    make_stale,
    write_policy,
    write_rollups,
)

from resolver.http.i18n import _catalogue_names  # noqa: E402
from resolver.store.querylog import QueryLog  # noqa: E402
from resolver.store.sqlite import SqliteRequestStore  # noqa: E402

REPO = HERE.parents[1]


@pytest.fixture(autouse=True)
def bundled_catalogue(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Category names and lists from the repository's own catalogue."""
    monkeypatch.setenv("SAFE_RESOLVER_BLOCKLISTS", str(REPO / "blocklists"))
    _catalogue_names.cache_clear()
    yield
    _catalogue_names.cache_clear()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """One headless Chromium per test, as the browser tests launch it (tests/browser)."""
    from test_browser_pages import ARGS, CHROMIUM

    playwright = pytest.importorskip("playwright.async_api")
    async with playwright.async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield launched
        await launched.close()


@pytest.fixture
async def list_server(aiohttp_server: Any) -> str:
    """A list mirror: good.txt serves a list, dead.txt fails (HTTP 500)."""

    async def handle(request: web.Request) -> web.Response:
        if request.match_info["name"] == "good.txt":
            return web.Response(text=GOOD_LIST)
        return web.Response(status=500, text="mirror broken")

    app = web.Application()
    app.router.add_get("/{name}", handle)
    server = await aiohttp_server(app, host="127.0.0.1", port=0)
    return str(server.make_url("/"))


@pytest.fixture
async def dash(tmp_path: Path, list_server: str) -> AsyncIterator[Dash]:
    policy = write_policy(tmp_path, list_server)
    await fetch_lists(policy)
    make_stale(policy)
    control = PolicyControl(policy, tmp_path / "var" / "overlay.yaml")
    log = QueryLog(tmp_path / "var" / "querylog.sqlite", batch=1, flush_interval=0.02)
    await log.start()
    store = SqliteRequestStore(tmp_path / "var" / "requests.sqlite")
    now = time.time()
    try:
        write_rollups(log, now)
        await fill_querylog(log, now)
        for url, note in REPORTS:
            store.add_content_report(url, note)
        yield Dash(tmp_path, policy, control, log, store, now)
    finally:
        await log.close()
        store.close()
