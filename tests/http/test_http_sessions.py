"""Dashboard sessions: they expire (fake clock), logout revokes them, a restart forgets them, and
the cookie is Secure when the admin listener is HTTPS."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from support.certs import client_context, make_cert
from test_http_admin import REMOTE, TOKEN, proxy_peer

from resolver.http.admin import make_admin_app
from resolver.http.admin_keys import SESSION_COOKIE
from resolver.http.runner import server_tls_context, start_http
from resolver.http.sessions import SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_expire_when_idle_and_at_their_lifetime():
    clock = Clock()
    store = SessionStore(lifetime=3600, idle_timeout=600, clock=clock)
    idle, busy = store.create("lan"), store.create("lan")
    assert len(idle) >= 43 and idle != busy  # 256 random bits, URL-safe
    for _ in range(6):  # used every 9 minutes: never idle for 10
        clock.now += 540
        assert store.get(busy)
    assert not store.get(idle)  # unused for 54 minutes
    clock.now += 540  # 63 minutes after login: past the lifetime however busy
    assert not store.get(busy) and len(store) == 0


def test_revoked_unknown_and_overflowing_sessions():
    store = SessionStore(lifetime=3600, idle_timeout=600, max_sessions=3, clock=Clock())
    first, second = store.create("lan"), store.create("lan")
    store.revoke(first)
    assert not store.get(first) and store.get(second)
    assert not store.get("") and not store.get("forged") and not store.get(second + "x")
    third, fourth, fifth = store.create("lan"), store.create("lan"), store.create("lan")
    assert len(store) == 3 and not store.get(second)  # the least recently used went
    assert all(store.get(s) for s in (third, fourth, fifth))


async def login(client, **kw):
    resp = await client.post(
        "/login", data={"token": TOKEN}, headers=REMOTE, allow_redirects=False, **kw
    )
    assert resp.status == 303
    return resp


@pytest.fixture
async def admin(aiohttp_client, control):
    clock = Clock()
    sessions = SessionStore(lifetime=8 * 3600, idle_timeout=1800, clock=clock)
    app = make_admin_app(control, token=TOKEN, store=None, querylog=None, sessions=sessions)
    app.middlewares.insert(0, proxy_peer)
    return await aiohttp_client(app), clock


async def test_session_cookie_attributes_and_idle_expiry(admin):
    client, clock = admin
    resp = await login(client)
    cookie = resp.cookies[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert cookie["max-age"] == str(8 * 3600) and not cookie["secure"]  # plain HTTP here
    assert (await client.get("/api/v1/stats", headers=REMOTE)).status == 200
    clock.now += 1799
    assert (await client.get("/api/v1/stats", headers=REMOTE)).status == 200
    clock.now += 1800
    assert (await client.get("/api/v1/stats", headers=REMOTE)).status == 401


async def test_logout_revokes_the_session_on_the_server(admin):
    client, _ = admin
    resp = await login(client)
    stolen = resp.cookies[SESSION_COOKIE].value
    resp = await client.post("/logout", headers=REMOTE, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    # The browser forgot it; a copy kept elsewhere must not work either.
    client.session.cookie_jar.clear()
    with_cookie = REMOTE | {"Cookie": f"{SESSION_COOKIE}={stolen}"}
    assert (await client.get("/api/v1/stats", headers=with_cookie)).status == 401
    # A fresh login is a new id (nothing carried over from before).
    resp = await login(client)
    assert resp.cookies[SESSION_COOKIE].value != stolen


async def test_a_restart_forgets_every_session(aiohttp_client, control):
    apps = [make_admin_app(control, token=TOKEN, store=None, querylog=None) for _ in range(2)]
    for app in apps:
        app.middlewares.insert(0, proxy_peer)
    before, after = [await aiohttp_client(app) for app in apps]
    cookie = (await login(before)).cookies[SESSION_COOKIE].value
    with_cookie = REMOTE | {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    assert (await before.get("/api/v1/stats", headers=with_cookie)).status == 200
    assert (await after.get("/api/v1/stats", headers=with_cookie)).status == 401


async def test_admin_over_tls_sets_a_secure_cookie(control, tmp_path: Path):
    cert, key = make_cert(tmp_path, "admin.school.lan")
    app = make_admin_app(control, token=TOKEN, store=None, querylog=None)
    runner = await start_http(
        app, [], tls_listens=[("127.0.0.1", 0)], tls=server_tls_context(cert, key), name="admin"
    )
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            resp = await session.post(
                f"https://localhost:{port}/login", data={"token": TOKEN},
                ssl=client_context(cert), allow_redirects=False,
            )  # fmt: skip
            assert resp.status == 303
            cookie = resp.cookies[SESSION_COOKIE]
            assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Strict"
            resp = await session.get(
                f"https://localhost:{port}/api/v1/stats", ssl=client_context(cert),
                headers={"Cookie": f"{SESSION_COOKIE}={cookie.value}", "Host": "admin.school.lan"},
            )  # fmt: skip
            assert resp.status == 200
    finally:
        await runner.cleanup()
