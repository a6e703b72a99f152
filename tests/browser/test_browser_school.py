"""The school's admin flows in a real headless Chromium against the real resolver, at desktop and
phone widths: a teacher approves her class's request for one hour from the dashboard (the other
class's request is not hers) and the hour ends on a moved clock; a teacher pauses video for her
class for a lesson and revokes the pause from the dashboard.

The server, its users and its movable expiry clock are tests/school_admin/school_support.py's.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "school_admin"))
from school_support import (  # noqa: F401  (school_fixture, school_server: fixtures)
    ALLOWED,
    BLOCKPAGE,
    PASSWORDS,
    SOCIAL,
    VIDEO,
    School,
    ask,
    request_unblock,
    school_fixture,
    school_server,
    wait_for,
)
from test_browser_login import WIDTHS, fetch
from test_browser_pages import CHROMIUM, shoot

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} not installed (tests/install-system-deps.sh)",
)
NONE = "Không có · None"  # the empty list of unblocks and pauses
TIMEOUT = 120_000  # ms for an answer that waits on a reload (a loaded machine is slow)


async def logged_in(browser, school: School, user: str, width: str):
    """A page on the dashboard, logged in through the log-in page the dashboard sends it to."""
    page = await browser.new_page(viewport=WIDTHS[width], locale="vi-VN")
    await page.goto(f"{school.base}/dashboard")
    assert page.url == f"{school.base}/login?next=/dashboard"
    await page.fill("#user", user)
    await page.fill("#password", PASSWORDS[user])
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{school.base}/dashboard")
    await page.locator("#who", has_text=user).wait_for()
    return page


async def answer(school: School, name: str, profile: str) -> str:
    return await asyncio.to_thread(ask, school, name, profile)


@pytest.mark.parametrize("width", list(WIDTHS))
async def test_teacher_approves_her_class_for_an_hour_and_it_ends(browser, school, tmp_path,
                                                                  width):  # fmt: skip
    name = f"hour-{width}.{SOCIAL}"
    mine = await asyncio.to_thread(request_unblock, school, name, "10a1")
    theirs = await asyncio.to_thread(request_unblock, school, name, "10a2")
    page = await logged_in(browser, school, "lan", width)
    row = page.locator("#requests tr", has_text=f"#{mine}")
    await row.wait_for()
    assert await page.locator("#requests tr", has_text=f"#{theirs}").count() == 0
    assert not await page.is_visible("#reload") and not await page.is_visible("#timeline")
    # Her navigation: her profiles' log and pages, not the school-wide ones nor the policy.
    nav = {href: await page.locator(f'#nav a[href="{href}"]').get_attribute("hidden")
           for href in ("/dashboard/log", "/dashboard/profiles", "/dashboard/history",
                        "/dashboard/policy", "/devices")}  # fmt: skip
    shown = [href for href, hidden in nav.items() if hidden is None]
    assert shown == ["/dashboard/log", "/dashboard/profiles"]
    status, body = await fetch(page, "POST", f"/api/v1/unblock-requests/{theirs}/approve",
                               {"minutes": 60})  # fmt: skip
    assert status == 403 and "10a2" in body["error"]  # not hers, even asked for directly

    await row.get_by_role("combobox").select_option("60")
    # The answer comes once the reload is live (the entry may show earlier: the file is written
    # first, and the page refreshes on its own).
    async with page.expect_response(lambda r: r.url.endswith("/approve"), timeout=TIMEOUT) as got:
        await row.get_by_role("button", name="Duyệt · Approve").click()
    assert (await got.value).status == 200
    entry_row = page.locator("#entries tr", has_text=name)
    await entry_row.wait_for()
    assert "Mở chặn" in await entry_row.inner_text() and "lan" in await entry_row.inner_text()
    assert await answer(school, name, "10a1") == ALLOWED
    assert await answer(school, name, "10a2") == BLOCKPAGE
    await shoot(page, tmp_path, f"dashboard-teacher-approved-{width}.png")

    (entry,) = [e for e in (await fetch(page, "GET", "/api/v1/overlay"))[1]["entries"]
                if e["target"] == name]  # fmt: skip
    # Five seconds before the hour is up; a reload re-arms the expiry timer, which ends it.
    school.move_clock(entry["until"] - time.time() - 5)
    await asyncio.to_thread(school.reload)
    await asyncio.to_thread(
        wait_for, lambda: ask(school, name, "10a1") == BLOCKPAGE, "the approval to end"
    )
    await page.reload()
    await page.locator("#entries td", has_text=NONE).wait_for()
    await page.close()


@pytest.mark.parametrize("width", list(WIDTHS))
async def test_teacher_pauses_video_for_a_lesson_and_revokes_it(browser, school, tmp_path,
                                                                width):  # fmt: skip
    assert await answer(school, VIDEO, "10a1") == BLOCKPAGE  # the lesson schedule blocks video
    page = await logged_in(browser, school, "lan", width)
    await page.locator("#pause-form").wait_for()
    assert await page.input_value("#p-profile") == "10a1"  # her only class, filled in
    await page.select_option("#p-kind", "category")
    await page.fill("#p-target", "video")
    await page.fill("#p-minutes", "45")
    async with page.expect_response(lambda r: r.url.endswith("/pauses"), timeout=TIMEOUT) as got:
        await page.click("#pause-form button[type=submit]")
    assert (await got.value).status == 201
    row = page.locator("#entries tr", has_text="Tạm dừng")
    await row.wait_for()
    assert await answer(school, VIDEO, "10a1") == ALLOWED
    assert await answer(school, VIDEO, "10a2") == BLOCKPAGE  # only her class

    await page.fill("#p-profile", "10a2")  # a class that is not hers: the server's refusal
    await page.fill("#p-target", "video")
    await page.click("#pause-form button[type=submit]")
    await page.locator("#msg.bad", has_text="'10a2' is not one of yours").wait_for()
    await shoot(page, tmp_path, f"dashboard-teacher-pause-{width}.png")

    async with page.expect_response(
        lambda r: r.request.method == "DELETE" and "/overlay/" in r.url, timeout=TIMEOUT
    ) as got:
        await row.get_by_role("button", name="Thu hồi · Revoke").click()
    assert (await got.value).status == 200
    await page.locator("#entries td", has_text=NONE).wait_for()
    assert await answer(school, VIDEO, "10a1") == BLOCKPAGE
    await page.close()
