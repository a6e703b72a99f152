"""Logging in as a user: limits per address and per user, wrong passwords counted, sessions that
end with the user, and the log-in page for browsers (JSON for scripts)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))
from test_http_admin import proxy_peer
from web_support import ControlImpl

from resolver.http.admin import make_admin_app
from resolver.http.admin_keys import CONFIG
from resolver.http.login import local_target
from resolver.http.users import User, UserTable, hash_password, write_users

TOKEN = "script-token-0123456789"
PASSWORD = "a long password 1"
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def peer(n: int) -> dict[str, str]:
    return {"X-Test-Peer": f"192.0.2.{n}", "Host": "admin.school.example"}


@pytest.fixture
async def admin(aiohttp_client, tmp_path: Path):
    path = tmp_path / "users.yaml"
    write_users(
        path,
        [
            User("lan", "teacher", ("students",), hash_password(PASSWORD)),
            User("hieu", "admin", (), hash_password(PASSWORD)),
        ],
    )
    table = UserTable(path)
    table.RECHECK = 0.0  # see every edit at once
    app = make_admin_app(
        ControlImpl(tmp_path / "overlay.yaml"), token=TOKEN, store=None, querylog=None, users=table
    )
    app.middlewares.insert(0, proxy_peer)
    return await aiohttp_client(app), app, path


async def login(client, user: str, password: str, n: int = 1, **form: str):
    data = {"user": user, "password": password, **form}
    return await client.post("/login", data=data, headers=peer(n), allow_redirects=False)


async def test_wrong_passwords_are_limited_per_user_and_counted(admin):
    client, app, _ = admin
    for n in range(10):  # ten addresses: the per-address limit is not what stops this
        resp = await login(client, "lan", "not her password", 10 + n)
        assert resp.status == 401 and "Wrong user name or password" in await resp.text()
    assert (await login(client, "lan", PASSWORD, 30)).status == 429  # even the right one
    assert (await login(client, "hieu", PASSWORD, 31)).status == 303  # others are not locked out
    assert (await login(client, "nobody", "a guess at it", 32)).status == 401
    counts = app[CONFIG].logins
    assert (counts["wrong_password"], counts["rate_limited"], counts["ok"]) == (10, 1, 1)
    assert counts["unknown_user"] == 1
    metrics = await (
        await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    ).text()
    assert 'safe_resolver_admin_logins_total{result="wrong_password"} 10.0' in metrics


async def test_attempts_are_limited_per_address(admin):
    client, _, _ = admin
    for i in range(10):
        assert (await login(client, f"guess{i}", "a guess at it", 7)).status == 401
    assert (await login(client, "hieu", PASSWORD, 7)).status == 429
    assert (await login(client, "hieu", PASSWORD, 8)).status == 303


async def test_the_token_still_logs_in_as_admin(admin):
    client, _, _ = admin
    assert (await login(client, "", "wrong token value")).status == 401
    resp = await client.post(
        "/login", data={"token": TOKEN}, headers=peer(1), allow_redirects=False
    )
    assert resp.status == 303
    me = await (await client.get("/api/v1/me", headers=peer(1))).json()
    assert (me["user"], me["role"], me["via"]) == ("token", "admin", "session")


async def test_a_session_ends_with_a_new_password_or_the_user_removed(admin):
    client, _, path = admin
    assert (await login(client, "lan", PASSWORD)).status == 303
    me = await (await client.get("/api/v1/me", headers=peer(1))).json()
    assert (me["user"], me["role"], me["profiles"]) == ("lan", "teacher", ["students"])
    write_users(path, [User("lan", "teacher", ("students",), hash_password("a new password 2"))])
    assert (await client.get("/api/v1/me", headers=peer(1))).status == 401
    assert (await login(client, "lan", "a new password 2")).status == 303
    assert (await client.get("/api/v1/me", headers=peer(1))).status == 200
    write_users(path, [])
    assert (await client.get("/api/v1/me", headers=peer(1))).status == 401


async def test_browsers_get_the_login_page_and_scripts_json(admin):
    client, _, _ = admin
    resp = await client.get(
        "/dashboard?tab=requests", headers=peer(1) | HTML, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == "/login?next=/dashboard?tab=requests"
    page = await client.get(resp.headers["Location"], headers=peer(1) | HTML)
    assert page.status == 200 and page.content_type == "text/html"
    assert 'name="next" value="/dashboard?tab=requests"' in await page.text()
    for accept in ("application/json", "*/*"):
        resp = await client.get("/dashboard", headers=peer(1) | {"Accept": accept})
        assert resp.status == 401 and (await resp.json())["error"] == "authentication required"
    resp = await login(client, "lan", PASSWORD, next="/dashboard?tab=requests")
    assert resp.headers["Location"] == "/dashboard?tab=requests"


def test_after_login_only_paths_on_this_site():
    assert local_target("/dashboard#x") == "/dashboard#x"
    for bad in (
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "",
        None,
        "/login?next=/login",
        "/x\nSet-Cookie: a=b",
    ):
        assert local_target(bad) == "/dashboard", bad


async def test_loopback_is_admin_unless_login_is_required(aiohttp_client, tmp_path: Path):
    control = ControlImpl(tmp_path / "overlay.yaml")
    free = await aiohttp_client(make_admin_app(control, token=TOKEN, store=None, querylog=None))
    me = await (await free.get("/api/v1/me")).json()
    assert (me["user"], me["role"]) == ("loopback", "admin")
    strict = await aiohttp_client(
        make_admin_app(control, token=TOKEN, store=None, querylog=None, require_login=True)
    )
    assert (await strict.get("/api/v1/me")).status == 401
    assert (await strict.get("/api/v1/me", headers={"Authorization": f"Bearer {TOKEN}"})).ok


async def test_a_null_origin_passes_only_as_a_same_origin_form_post(admin):
    client, _, _ = admin
    form = {"user": "lan", "password": PASSWORD}
    for headers, status in (
        ({"Origin": "null", "Sec-Fetch-Site": "same-origin"}, 303),
        ({"Origin": "null", "Sec-Fetch-Site": "cross-site"}, 403),
        ({"Origin": "null"}, 403),
    ):
        resp = await client.post(
            "/login", data=form, headers=peer(40) | headers, allow_redirects=False
        )
        assert resp.status == status, headers
