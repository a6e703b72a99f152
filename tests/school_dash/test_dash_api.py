"""The dashboard's endpoints through the real admin app (aiohttp test client) over real data:
history from roll-ups, query-log search, profiles, list status, the inbox, the policy editor."""

from __future__ import annotations

import csv
import html
import io
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web
from dash_support import LOG_ROWS, PHONE_TOKEN, Dash, today

from resolver.http.admin import make_admin_app
from resolver.http.users import User, UserTable, hash_password, write_users
from resolver.store.reports import FORMULA_START

TOKEN = "a-long-enough-admin-token"


@web.middleware
async def proxy_peer(request: web.Request, handler: Any) -> web.StreamResponse:
    """The peer address from a header, as a trusted proxy would set it: the only way to show
    the app a remote peer on a loopback-only test machine."""
    peer = request.headers.get("X-Test-Peer")
    return await handler(request.clone(remote=peer) if peer else request)


async def client_for(aiohttp_client: Any, dash: Dash, token: str | None = None) -> Any:
    app = make_admin_app(dash.control, token=token, store=dash.store, querylog=dash.log)
    app.middlewares.insert(0, proxy_peer)
    return await aiohttp_client(app)


async def get(http: Any, path: str, status: int = 200, **params: Any) -> Any:
    resp = await http.get(path, params=params)
    assert resp.status == status, (path, params, await resp.text())
    return await resp.json()


# -- history -------------------------------------------------------------------------------------


async def test_history_comes_from_the_rollups_with_missing_days_marked(aiohttp_client, dash):
    client = await client_for(aiohttp_client, dash)
    week = await get(client, "/api/v1/history", period="week")
    assert len(week["per_day"]) == 7 and week["to"] == today(dash.now).date().isoformat()
    assert week["totals"]["mandated"] == 18 and week["totals"]["blocked"] == sum(
        20 + back + 3 for back in range(7) if back != 2
    )
    missing = [d for d in week["per_day"] if not d["covered"]]
    assert len(missing) == 1 and missing[0]["queries"] is None  # no data is not zero
    assert week["coverage"]["covered"] == 6
    assert week["by_category"][0]["category"] == "social"
    assert week["category_names"]["social"]["vi"]
    assert {p["profile"] for p in week["per_profile"]} == {"primary", "guests"}
    assert week["top_blocked"] == [{"domain": "facebook.com", "blocked": 6 * 20 + 0 + 1 + 3 + 4
                                    + 5 + 6}]  # fmt: skip
    day = await get(client, "/api/v1/history", period="day")
    assert [d["queries"] for d in day["per_day"]] == [100 + 20 + 3]
    half = await get(client, "/api/v1/history", period="6months")
    assert len(half["per_day"]) == 183 and half["coverage"]["covered"] == 6
    guests = await get(client, "/api/v1/history", period="week", profile="guests")
    assert guests["totals"]["queries"] == guests["totals"]["mandated"] == 18
    nobody = await get(client, "/api/v1/history", period="week", profile="nobody")
    # The server was up those days: a profile that asked nothing is 0, not "no data".
    assert nobody["coverage"]["covered"] == 6 and nobody["totals"]["queries"] == 0
    await get(client, "/api/v1/history", 400, period="year")


# -- query-log search ----------------------------------------------------------------------------


async def test_querylog_search_finds_rows_and_respects_every_filter(aiohttp_client, dash):
    client = await client_for(aiohttp_client, dash)

    async def names(**params: Any) -> list[str]:
        return [r["qname"] for r in (await get(client, "/api/v1/querylog", **params))["rows"]]

    assert sorted(await names(qname="facebook.com")) == [
        "static.xx.facebook.com", "www.facebook.com", "www.facebook.com", "www.facebook.com",
    ]  # fmt: skip
    assert await names(qname="facebook.com", profile="guests") == ["www.facebook.com"]
    assert len(await names(action="blocked", profile="primary")) == 3
    assert await names(qtype="aaaa") == ["www.facebook.com"]
    assert sorted(set(await names(contains="BOOK"))) == ["static.xx.facebook.com",
                                                         "www.facebook.com"]  # fmt: skip
    assert await names(contains="%") == []  # a LIKE wildcard is text here
    by_address = await get(client, "/api/v1/querylog", client="10.1.4.20")
    assert len(by_address["rows"]) == 3 and by_address["clients"] == "pseudonymized"
    pseudonym = by_address["rows"][0]["client"]
    assert re.fullmatch("[0-9a-f]{16}", pseudonym) and "10.1.4.20" not in str(by_address)
    assert len(await names(client=pseudonym)) == 3  # as the rows show it
    window = await names(since=dash.now - 220, until=dash.now - 90)
    assert window == ["www.facebook.com", "www.facebook.com", "olm.vn"]
    first = await get(client, "/api/v1/querylog", limit=4, until=dash.now)
    assert first["next_offset"] == 4
    rest = await get(client, "/api/v1/querylog", limit=4, until=dash.now, offset=4)
    assert rest["next_offset"] is None and len(rest["rows"]) == 2
    seen = [r["ts"] for r in first["rows"] + rest["rows"]]
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 6
    for bad in ({"qtype": "A;--"}, {"action": "drop"}, {"offset": "-1"}, {"qname": "x" * 300}):
        await get(client, "/api/v1/querylog", 400, **bad)


# -- profiles -------------------------------------------------------------------------------------


async def test_a_profile_page_says_what_it_blocks_now_its_schedules_devices_and_today(
    aiohttp_client, dash
):
    client = await client_for(aiohttp_client, dash)
    listed = await get(client, "/api/v1/profiles")
    assert [p["id"] for p in listed["profiles"]] == ["primary", "teachers", "guests"]
    primary = await get(client, "/api/v1/profiles/primary")
    assert "social" in primary["categories"] and "adult" in primary["categories"]
    assert "video" in primary["blocked_now"] and "video" not in primary["categories"]
    schedules = {s["name"]: s for s in primary["schedules"]}
    assert schedules["always"]["active"] and "always" in primary["schedules_active"]
    assert schedules["lessons"]["windows"] == ["mon-fri 07:00-11:30", "mon-fri 13:30-17:00"]
    assert schedules["lessons"]["except"] == ["2026-09-02"]
    assert schedules["lessons"]["next_change"] > dash.now
    assert primary["devices"] == ["an-phone"] and primary["allow"] == ["olm.vn", "hocmai.vn"]
    assert primary["networks"] == ["10.1.0.0/16"] and primary["block_mode"] == "blockpage"
    assert primary["safe_search"] == {"search": "strict", "youtube": "strict"}
    assert primary["today"]["totals"]["queries"] == 120
    assert primary["today"]["totals"]["blocked"] == 20
    top = {r["qname"]: r["blocked"] for r in primary["today"]["top_blocked"]}
    assert top == {"www.facebook.com": 2, "static.xx.facebook.com": 1}
    guests = await get(client, "/api/v1/profiles/guests")
    assert guests["default"] and guests["block_mode"] == "nxdomain"
    assert PHONE_TOKEN not in str(guests) + str(primary)
    await get(client, "/api/v1/profiles/nobody", 404)


async def test_schedule_next_change_is_a_window_edge() -> None:
    from datetime import datetime

    from resolver.http.profiles import next_change
    from resolver.policy.schedule import Schedule, parse_window

    tz = today(0).tzinfo
    window = parse_window("mon-fri 07:00-11:30")
    assert not isinstance(window, str)
    lessons = Schedule("lessons", tz, (window,), frozenset(), frozenset(), frozenset(),
                       None, None, False)  # fmt: skip
    monday_9 = datetime(2026, 3, 2, 9, 0, tzinfo=tz).timestamp()
    assert next_change(lessons, monday_9) == datetime(2026, 3, 2, 11, 30, tzinfo=tz).timestamp()
    friday_noon = datetime(2026, 3, 6, 12, 0, tzinfo=tz).timestamp()
    assert next_change(lessons, friday_noon) == datetime(2026, 3, 9, 7, 0, tzinfo=tz).timestamp()


# -- list status ---------------------------------------------------------------------------------


async def test_list_status_from_real_fetches_never_fetched_and_stale(aiohttp_client, dash):
    client = await client_for(aiohttp_client, dash)
    rows = {r["id"]: r for r in (await get(client, "/api/v1/lists"))["lists"]}
    good = rows["good-adult"]
    assert good["state"] == "ok" and good["rules"] == 2 and good["serving"]
    assert dash.now - 60 < good["last_success"] <= dash.now + 1 and good["last_error"] is None
    dead = rows["dead-adult"]
    assert dead["state"] == "never-fetched" and not dead["serving"]
    assert "500" in dead["last_error"] and dead["last_error_at"] >= dash.now - 60
    assert dead["last_success"] is None and dead["file_time"] is None  # no "5 minutes" here
    stale = rows["extra-social"]
    assert stale["state"] == "stale" and stale["stale"] and stale["rules"] == 1
    catalogue = [r for r in rows.values()
                 if r["kind"] == "url" and r["id"] not in ("good-adult", "dead-adult")]  # fmt: skip
    assert catalogue and all(r["state"] == "never-fetched" for r in catalogue)
    assert rows["core-adult"]["state"] == "bundled" and rows["core-adult"]["rules"] > 0
    assert rows["example-mandated"]["category"] == "mandated"


# -- content-reports inbox ------------------------------------------------------------------------


async def test_inbox_pages_deletes_and_exports_inert_csv(aiohttp_client, dash):
    for i in range(120):
        dash.store.add_content_report(f"http://site{i}.example/", f"note {i}")
    client = await client_for(aiohttp_client, dash)
    first = await get(client, "/api/v1/content-reports")
    assert first["total"] == 123 and len(first["reports"]) == 50 and not first["full"]
    assert first["retention_days"] == 90 and first["cap"] == 5000
    last = await get(client, "/api/v1/content-reports", limit=50, offset=100)
    assert len(last["reports"]) == 23 and last["reports"][-1]["url"] == "http://bad.example/game"
    ids = [r["id"] for r in first["reports"][:2]]
    resp = await client.post("/api/v1/content-reports/delete", json={"ids": ids})
    assert (await resp.json())["deleted"] == 2
    assert (await get(client, "/api/v1/content-reports"))["total"] == 121
    for bad in ({"ids": []}, {"ids": ["1"]}, {"ids": [True]}, {"x": 1}):
        assert (await client.post("/api/v1/content-reports/delete", json=bad)).status == 400
    resp = await client.get("/api/v1/content-reports.csv")
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    text = (await resp.read()).decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[0] == ["id", "received", "url", "note"] and len(rows) == 122
    cells = [cell for row in rows[1:] for cell in row[1:]]
    assert not [c for c in cells if c.startswith(FORMULA_START)]  # nothing a sheet would run
    assert '\'=HYPERLINK("http://evil.example","click")' in cells
    assert "'+cmd|' /C calc'!A0" in cells and "'@SUM(1+1)" in cells
    assert "bạo lực · violent" in cells


# -- access --------------------------------------------------------------------------------------


async def test_a_page_without_a_session_goes_to_the_login_form_the_api_stays_json(
    aiohttp_client, dash
):
    client = await client_for(aiohttp_client, dash, token=TOKEN)
    remote = {"X-Test-Peer": "192.0.2.50", "Host": "admin.school.example"}
    browser = remote | {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for path in (
        "/dashboard/history?period=week",
        "/dashboard/profiles/primary",
        "/dashboard/log?qname=x.example&action=blocked",  # the whole search comes back
    ):
        resp = await client.get(path, headers=browser, allow_redirects=False)
        assert resp.status == 303, path
        login = urlsplit(resp.headers["Location"])
        assert login.path == "/login" and parse_qs(login.query)["next"] == [path]
        form = await client.get(resp.headers["Location"], headers=browser)
        assert f'name="next" value="{html.escape(path)}"' in await form.text()
    resp = await client.get("/api/v1/history", headers=remote)
    assert resp.status == 401 and (await resp.json())["error"]
    resp = await client.get("/static/history.js", headers=remote)
    assert resp.status == 401  # the scripts need a session too
    ok = await client.get("/dashboard/lists", headers=remote | {"Authorization": f"Bearer {TOKEN}"})
    assert ok.status == 200 and "text/html" in ok.headers["Content-Type"]
    assert (await client.get("/static/nothing.js")).status == 404


# -- roles ---------------------------------------------------------------------------------------

PASSWORD = "a long password 1"


async def logged_in(aiohttp_client: Any, dash: Dash, users: list[User], name: str) -> Any:
    path = dash.folder / "users.yaml"
    write_users(path, users)
    app = make_admin_app(dash.control, token=None, store=dash.store, querylog=dash.log,
                         users=UserTable(path), require_login=True)  # fmt: skip
    client = await aiohttp_client(app)
    resp = await client.post(
        "/login", data={"user": name, "password": PASSWORD}, allow_redirects=False
    )
    assert resp.status == 303
    return client


async def test_a_teacher_sees_her_profiles_log_and_pages_and_nothing_school_wide(
    aiohttp_client, dash
):
    hashed = hash_password(PASSWORD)
    lan = User("lan", "teacher", ("primary", "teachers"), hashed)
    client = await logged_in(aiohttp_client, dash, [lan], "lan")
    listed = await get(client, "/api/v1/profiles")
    assert [p["id"] for p in listed["profiles"]] == ["primary", "teachers"]
    primary = await get(client, "/api/v1/profiles/primary")
    assert primary["allow"] == ["olm.vn", "hocmai.vn"]
    assert "not one of yours" in (await get(client, "/api/v1/profiles/guests", 403))["error"]
    # Her log: both her profiles at once (one logs nothing), paged; another's is refused.
    first = await get(client, "/api/v1/querylog", limit=3)
    assert {r["profile"] for r in first["rows"]} == {"primary"} and first["next_offset"] == 3
    rest = await get(client, "/api/v1/querylog", limit=3, offset=3)
    assert len(rest["rows"]) == 1 and rest["next_offset"] is None
    await get(client, "/api/v1/querylog", 403, profile="guests")
    for path in ("/api/v1/history", "/api/v1/lists", "/api/v1/content-reports", "/api/v1/policy"):
        await get(client, path, 403)
    for page, status in (("/dashboard/log", 200), ("/dashboard/profiles/primary", 200),
                         ("/dashboard/history", 403), ("/dashboard/lists", 403),
                         ("/dashboard/reports", 403), ("/dashboard/policy", 403)):  # fmt: skip
        assert (await client.get(page)).status == status, page
    me = await get(client, "/api/v1/me")  # what the navigation shows her
    assert "GET /dashboard/log" in me["permissions"]
    assert "GET /dashboard/history" not in me["permissions"]


async def test_a_viewer_reads_every_page_but_the_policy_and_changes_nothing(aiohttp_client, dash):
    users = [User("vy", "viewer", (), hash_password(PASSWORD))]
    viewer = await logged_in(aiohttp_client, dash, users, "vy")
    assert len((await get(viewer, "/api/v1/querylog"))["rows"]) == len(LOG_ROWS)
    assert (await get(viewer, "/api/v1/history", period="week"))["coverage"]["covered"] == 6
    assert (await viewer.get("/api/v1/content-reports.csv")).status == 200
    refused = await viewer.post("/api/v1/content-reports/delete", json={"ids": [1]})
    assert refused.status == 403
    assert (await viewer.get("/api/v1/policy")).status == 403
    assert (await viewer.post("/api/v1/policy/undo", json={"base": "x"})).status == 403
