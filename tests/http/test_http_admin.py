"""The admin API through a real test server: access rules, every endpoint, the OpenAPI file."""

from __future__ import annotations

import asyncio
import re
import time
from importlib import resources
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from web_support import ControlImpl, event

from resolver.http.admin import make_admin_app
from resolver.store.querylog import QueryLog
from resolver.store.sqlite import SqliteRequestStore

TOKEN = "s3cret-token-for-tests"


@web.middleware
async def proxy_peer(request: web.Request, handler):
    """Sets the peer address from a header, as a trusted reverse proxy would (aiohttp-remotes):
    the only way to show the app a non-loopback peer on a loopback-only test machine."""
    peer = request.headers.get("X-Test-Peer")
    return await handler(request.clone(remote=peer) if peer else request)


async def admin_client(aiohttp_client, control, *, token=None, store=None, querylog=None):
    app = make_admin_app(control, token=token, store=store, querylog=querylog)
    app.middlewares.insert(0, proxy_peer)
    return await aiohttp_client(app)


REMOTE = {"X-Test-Peer": "192.0.2.50", "Host": "admin.school.example"}


async def test_loopback_needs_no_token_and_sees_every_read_endpoint(aiohttp_client, control):
    client = await admin_client(aiohttp_client, control)
    assert await (await client.get("/api/v1/health")).json() == {"status": "ok"}
    status = await (await client.get("/api/v1/status")).json()
    assert status["policy_generation"] == 1 and status["list_sizes"]["adult"] == 1200
    assert status["features"] == {"querylog": False, "requests": False}
    stats = await (await client.get("/api/v1/stats")).json()
    assert stats["queries"]["total"] == 102
    assert stats["queries"]["by_category"] == {"adult": 7, "gambling": 3}
    assert stats["latency"]["buckets"]["+Inf"] == 5
    assert stats["category_names"]["adult"]["vi"] == "Nội dung người lớn"
    resp = await client.get("/api/v1/querylog")
    assert resp.status == 404  # no query log configured


async def test_non_loopback_without_configured_token_is_refused(aiohttp_client, control):
    client = await admin_client(aiohttp_client, control)
    for path in ("/api/v1/health", "/metrics", "/dashboard", "/api/v1/stats"):
        resp = await client.get(path, headers=REMOTE)
        assert resp.status == 403, path
    resp = await client.get("/api/v1/health", headers={**REMOTE, "Authorization": "Bearer x"})
    assert resp.status == 403


async def test_token_rules_off_loopback(aiohttp_client, control):
    client = await admin_client(aiohttp_client, control, token=TOKEN)
    resp = await client.get("/api/v1/status", headers=REMOTE)
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    for wrong in ("Bearer nope", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"):
        resp = await client.get("/api/v1/status", headers={**REMOTE, "Authorization": wrong})
        assert resp.status == 401, wrong
    good = {**REMOTE, "Authorization": f"Bearer {TOKEN}"}
    assert (await client.get("/api/v1/status", headers=good)).status == 200
    assert (await client.post("/api/v1/reload", headers=good)).status == 200


async def test_dns_rebinding_host_on_loopback_is_refused(aiohttp_client, control):
    client = await admin_client(aiohttp_client, control)
    resp = await client.get("/api/v1/status", headers={"Host": "rebind.attacker.example"})
    assert resp.status == 403
    assert (await client.get("/api/v1/status", headers={"Host": "localhost:8053"})).status == 200


async def test_cross_site_state_changes_are_refused(aiohttp_client, control):
    client = await admin_client(aiohttp_client, control)
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        resp = await client.post("/api/v1/reload", headers=headers)
        assert resp.status == 403
    assert control.generation == 1
    own = f"http://{client.server.host}:{client.server.port}"
    resp = await client.post("/api/v1/reload", headers={"Origin": own})
    assert resp.status == 200 and (await resp.json())["generation"] == 2


async def test_login_sets_a_session_cookie(aiohttp_client, control):
    client = await admin_client(aiohttp_client, control, token=TOKEN)
    assert (await client.get("/login", headers=REMOTE)).status == 200
    resp = await client.post("/login", data={"token": "wrong"}, headers=REMOTE)
    assert resp.status == 401
    resp = await client.post("/login", data={"token": TOKEN}, headers=REMOTE, allow_redirects=False)
    assert resp.status == 303
    cookie = resp.cookies["sr_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and TOKEN not in cookie.value
    resp = await client.get("/api/v1/stats", headers=REMOTE)  # the jar sends the cookie
    assert resp.status == 200


async def test_reload_explain_and_flush(aiohttp_client, control):
    client = await admin_client(aiohttp_client, control)
    control.fail_next_reload = True
    resp = await client.post("/api/v1/reload")
    assert resp.status == 422 and (await resp.json())["error"] == "x.yaml:3: bad key"
    resp = await client.get(
        "/api/v1/explain",
        params={"client": "127.0.0.1", "name": "adult.example", "at": "2025-03-01T10:00:00"},
    )
    body = await resp.json()
    assert body["action"] == "block" and body["at"].startswith("2025-03-01T10:00:00")
    for params in ({"client": "127.0.0.1"}, {"client": "10.9.9.9", "name": "a.example"},
                   {"client": "127.0.0.1", "name": "a.example", "at": "noon"}):  # fmt: skip
        assert (await client.get("/api/v1/explain", params=params)).status == 400
    resp = await client.post("/api/v1/cache/flush", json={"name": "a.example"})
    assert await resp.json() == {"flushed": 1, "name": "a.example"}
    assert (await (await client.post("/api/v1/cache/flush")).json())["flushed"] == 2
    assert (await client.post("/api/v1/cache/flush", json=[1])).status == 400
    resp = await client.post("/api/v1/cache/flush", data=b"x" * (70 * 1024),
                             headers={"Content-Type": "application/json"})  # fmt: skip
    assert resp.status == 413
    assert (await client.delete("/api/v1/status")).status == 405


async def test_unblock_requests_approve_writes_overlay_reject_and_conflicts(
    aiohttp_client, control: ControlImpl, request_store: SqliteRequestStore, tmp_path: Path
):
    client = await admin_client(aiohttp_client, control, store=request_store)
    first = request_store.add_unblock("adult.example", "students", "adult", "biology")
    second = request_store.add_unblock("casino.example", "students", "gambling", "")
    listed = await (await client.get("/api/v1/unblock-requests")).json()
    assert [r["id"] for r in listed["requests"]] == [second, first]
    resp = await client.post(f"/api/v1/unblock-requests/{first}/approve")
    assert resp.status == 200 and (await resp.json())["status"] == "approved"
    overlay = yaml.safe_load((tmp_path / "overlay.yaml").read_text(encoding="utf-8"))
    assert overlay["allow"][0]["name"] == "adult.example"
    assert overlay["allow"][0]["note"] == f"unblock request #{first}: biology"
    assert control.block_reason("127.0.0.1", "adult.example") is None
    assert (await client.post(f"/api/v1/unblock-requests/{first}/reject")).status == 409
    resp = await client.post(f"/api/v1/unblock-requests/{second}/reject")
    assert (await resp.json())["status"] == "rejected"
    assert (await client.post("/api/v1/unblock-requests/999/approve")).status == 404
    assert (await client.post("/api/v1/unblock-requests/abc/approve")).status == 404
    bad = request_store.add_unblock("x.example", "nobody", None, "")
    assert (await client.post(f"/api/v1/unblock-requests/{bad}/approve")).status == 400
    done = await (await client.get("/api/v1/unblock-requests?status=all")).json()
    assert {r["status"] for r in done["requests"]} == {"approved", "rejected", "pending"}
    assert (await client.get("/api/v1/unblock-requests?status=x")).status == 400
    request_store.add_content_report("http://bad.example/", "scary")
    reports = await (await client.get("/api/v1/content-reports")).json()
    assert reports["reports"][0]["url"] == "http://bad.example/"


async def test_querylog_search_and_summary(aiohttp_client, control, tmp_path: Path):
    log = QueryLog(tmp_path / "q.sqlite", batch=1, flush_interval=0.02)
    await log.start()
    try:
        now = time.time()
        log.submit(event(now - 10, qname="adult.example", action="blocked", category="adult"))
        log.submit(event(now - 5, client="192.0.2.99", qname="x.adult.example",
                         action="blocked", category="adult"))  # fmt: skip
        log.submit(event(now))
        for _ in range(300):
            if log.stats.querylog_written == 3:
                break
            await asyncio.sleep(0.01)
        client = await admin_client(aiohttp_client, control, querylog=log)
        body = await (
            await client.get("/api/v1/querylog", params={"qname": "adult.example"})
        ).json()
        assert body["clients"] == "pseudonymized" and len(body["rows"]) == 2
        assert all(r["client"] != "192.0.2.10" for r in body["rows"])
        mine = await (await client.get("/api/v1/querylog", params={"client": "192.0.2.99"})).json()
        assert [r["qname"] for r in mine["rows"]] == ["x.adult.example"]
        since = await (await client.get("/api/v1/querylog", params={"since": now - 1})).json()
        assert len(since["rows"]) == 1
        for params in ({"limit": "5000"}, {"since": "yesterday"}, {"limit": "-1"}):
            assert (await client.get("/api/v1/querylog", params=params)).status == 400
        summary = await (await client.get("/api/v1/querylog/summary?hours=1")).json()
        assert summary["blocked"] == 2 and summary["by_category"] == [
            {"category": "adult", "blocked": 2}
        ]
    finally:
        await log.close()


def _spec() -> dict:
    text = resources.files("resolver.http").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def test_openapi_file_is_valid_openapi_3_1():
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(_spec())


async def test_every_route_is_documented_and_served(aiohttp_client, control, request_store):
    app = make_admin_app(control, token=None, store=request_store, querylog=None)
    paths = _spec()["paths"]
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", route.resource.canonical)
        routes.add((path, route.method.lower()))
        assert path in paths and route.method.lower() in paths[path], (path, route.method)
    documented = {(p, m) for p, ops in paths.items() for m in ops if m != "parameters"}
    assert documented == routes
    client = await aiohttp_client(app)
    served = await client.get("/openapi.yaml")
    assert yaml.safe_load(await served.text())["openapi"] == "3.1.0"
