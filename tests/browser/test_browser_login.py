"""Logging in to the dashboard in a real headless Chromium, at desktop and phone widths: the
log-in page instead of JSON, a wrong password refused on the page, a teacher who can approve
for her class and not for another, logout that ends the session on the server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_browser_pages import ARGS, CHROMIUM, shoot  # noqa: F401  (ARGS: the browser fixture)
from web_support import ControlImpl

from resolver.http.admin import make_admin_app
from resolver.http.runner import start_http
from resolver.http.users import User, UserTable, hash_password, write_users
from resolver.store.sqlite import SqliteRequestStore

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} not installed (tests/install-system-deps.sh)",
)
PASSWORD = "teacher password 1"
WIDTHS = {"desktop": {"width": 1000, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
async def admin(tmp_path: Path):
    users = tmp_path / "users.yaml"
    write_users(users, [User("lan", "teacher", ("students",), hash_password(PASSWORD))])
    store = SqliteRequestStore(tmp_path / "requests.sqlite")
    control = ControlImpl(tmp_path / "overlay.yaml")
    app = make_admin_app(
        control, token=None, store=store, querylog=None, users=UserTable(users), require_login=True
    )
    runner = await start_http(app, [("127.0.0.1", 0)])
    yield control, store, f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()
    store.close()


async def fetch(page, method: str, path: str, body: dict | None = None) -> list:
    """A same-origin fetch from the page (its cookie, its Origin): [status, JSON]."""
    return await page.evaluate(
        """async ([method, path, body]) => {
            const init = {method, headers: {"Accept": "application/json"}};
            if (body) { init.body = JSON.stringify(body);
                        init.headers["Content-Type"] = "application/json"; }
            const r = await fetch(path, init);
            return [r.status, await r.json()];
        }""",
        [method, path, body],
    )


@pytest.mark.parametrize("width", list(WIDTHS))
async def test_teacher_logs_in_approves_for_her_class_and_logs_out(browser, admin, tmp_path, width):
    control, store, base = admin
    mine = store.add_unblock("adult.example", "students", "adult", "biology")
    theirs = store.add_unblock("casino.example", "staff", "gambling", "")
    page = await browser.new_page(viewport=WIDTHS[width], locale="vi-VN")
    await page.goto(f"{base}/dashboard")
    assert page.url == f"{base}/login?next=/dashboard"  # the page, not raw JSON
    await page.fill("#user", "lan")
    await page.fill("#password", "not her password")
    await page.click("button[type=submit]")
    await page.get_by_role("alert").get_by_text("Wrong user name or password").wait_for()
    await shoot(page, tmp_path, f"login-refused-{width}.png")
    await page.fill("#user", "lan")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/dashboard")
    status, me = await fetch(page, "GET", "/api/v1/me")
    assert status == 200 and (me["role"], me["profiles"]) == ("teacher", ["students"])
    status, body = await fetch(page, "POST", f"/api/v1/unblock-requests/{theirs}/approve")
    assert status == 403 and "staff" in body["error"]
    status, body = await fetch(
        page, "POST", f"/api/v1/unblock-requests/{mine}/approve", {"minutes": 60}
    )
    assert status == 200 and body["entry"]["by"] == "lan" and body["entry"]["until"]
    assert control.block_reason("127.0.0.1", "adult.example") is None
    status, _ = await fetch(page, "GET", "/api/v1/stats")
    assert status == 403  # a teacher does not see the whole school's figures
    await page.evaluate("fetch('/logout', {method: 'POST'})")
    await page.goto(f"{base}/dashboard")
    assert page.url.startswith(f"{base}/login")
    await page.close()
