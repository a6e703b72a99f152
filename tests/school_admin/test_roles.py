"""Who may call which admin route: the table as the product defines it, and the app enforcing it
for every route and every role over HTTP (a real aiohttp server, real sessions, real hashes)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))
from web_support import ControlImpl

from resolver.http.admin import make_admin_app
from resolver.http.roles import ROUTE_ROLES, route_key
from resolver.http.users import User, UserTable, hash_password, write_users
from resolver.store.sqlite import SqliteRequestStore

A, T, V = "admin", "teacher", "viewer"
# The product's rules, written out: admin everything; teacher requests, pauses, overlay, the
# query log and profile pages (her profiles: the handlers narrow it), not the school-wide
# history, lists and content reports; viewer the dashboard and reports, read-only, without the
# policy editor and the device pages (devices' secret tokens).
EXPECTED: dict[tuple[str, str], set[str]] = {
    ("GET", "/api/v1/health"): {A, T, V},
    ("GET", "/api/v1/me"): {A, T, V},
    ("GET", "/api/v1/status"): {A, V},
    ("POST", "/api/v1/reload"): {A},
    ("GET", "/api/v1/explain"): {A, V},
    ("POST", "/api/v1/cache/flush"): {A},
    ("GET", "/api/v1/stats"): {A, V},
    ("GET", "/api/v1/querylog"): {A, T, V},
    ("GET", "/api/v1/querylog/summary"): {A, T, V},
    ("GET", "/api/v1/unblock-requests"): {A, T, V},
    ("POST", "/api/v1/unblock-requests/{id}/approve"): {A, T},
    ("POST", "/api/v1/unblock-requests/{id}/reject"): {A, T},
    ("GET", "/api/v1/overlay"): {A, T, V},
    ("DELETE", "/api/v1/overlay/{id}"): {A, T},
    ("POST", "/api/v1/pauses"): {A, T},
    ("GET", "/api/v1/content-reports"): {A, V},
    ("GET", "/api/v1/content-reports.csv"): {A, V},
    ("POST", "/api/v1/content-reports/delete"): {A},
    ("GET", "/api/v1/history"): {A, V},
    ("GET", "/api/v1/lists"): {A, V},
    ("GET", "/api/v1/profiles"): {A, T, V},
    ("GET", "/api/v1/profiles/{id}"): {A, T, V},
    ("GET", "/api/v1/policy"): {A},
    ("POST", "/api/v1/policy/preview"): {A},
    ("POST", "/api/v1/policy"): {A},
    ("POST", "/api/v1/policy/undo"): {A},
    ("GET", "/metrics"): {A, V},
    ("GET", "/openapi.yaml"): {A, T, V},
    ("GET", "/"): {A, T, V},
    ("GET", "/dashboard"): {A, T, V},
    ("GET", "/dashboard/history"): {A, V},
    ("GET", "/dashboard/log"): {A, T, V},
    ("GET", "/dashboard/profiles"): {A, T, V},
    ("GET", "/dashboard/profiles/{id}"): {A, T, V},
    ("GET", "/dashboard/lists"): {A, V},
    ("GET", "/dashboard/reports"): {A, V},
    ("GET", "/dashboard/policy"): {A},
    ("GET", "/static/{name}"): {A, T, V},
    ("GET", "/devices"): {A},
    ("GET", "/devices/{name}"): {A},
    ("GET", "/devices/{name}/{protocol}.mobileconfig"): {A},
    ("GET", "/school-ca.crt"): {A, T, V},
}
OPEN = {("GET", "/login"), ("POST", "/login"), ("POST", "/logout")}
PASSWORD = "a long password 1"
# Path parameters that reach the handler and are refused there with 404/400, never 403.
SAMPLE = {"id": "999", "name": "no-such-device", "protocol": "doh"}


def test_the_table_is_the_products_rules():
    assert {key: set(roles) for key, roles in ROUTE_ROLES.items()} == EXPECTED


def _routes(app) -> set[tuple[str, str]]:
    return {
        route_key(r.method, r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"
    }


@pytest.fixture
async def admin_app(aiohttp_client, tmp_path: Path):
    path = tmp_path / "users.yaml"
    write_users(
        path,
        [
            User(f"u-{role}", role, ("students",) if role == T else (), hash_password(PASSWORD))
            for role in (A, T, V)
        ],
    )
    store = SqliteRequestStore(tmp_path / "requests.sqlite")
    app = make_admin_app(
        ControlImpl(tmp_path / "overlay.yaml"),
        token=None,
        store=store,
        querylog=None,
        users=UserTable(path),
        require_login=True,
    )
    yield app, await aiohttp_client(app)
    store.close()


async def test_every_route_is_in_the_table_and_enforced_for_every_role(admin_app):
    app, client = admin_app
    assert _routes(app) - OPEN == set(EXPECTED)  # a new route must be given its roles here
    for role in (A, T, V):
        client.session.cookie_jar.clear()
        resp = await client.post(
            "/login", data={"user": f"u-{role}", "password": PASSWORD}, allow_redirects=False
        )
        assert resp.status == 303
        for method, path in sorted(EXPECTED):
            url = re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], path)
            resp = await client.request(method, url, allow_redirects=False)
            if role in EXPECTED[(method, path)]:
                assert resp.status != 403, (role, method, path, await resp.text())
            else:
                assert resp.status == 403, (role, method, path, resp.status)
                assert f"a {role} may not use" in (await resp.json())["error"]
