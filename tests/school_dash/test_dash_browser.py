"""The dashboard in a real headless Chromium (Debian's), at a desktop and a phone width, over the
real data of dash_support.py: the policy edited in the form (a deny entry and a service blocked;
checked, explained, saved with its comments), a bad edit refused with `check`'s message, an
undo; a schedule added in the form and given to a profile; each table usable on a phone
(cards, no sideways scrolling, no column squeezed to a letter per line).

Screenshots land in tmp_path (and in $SR_SCREENSHOT_DIR when set, to look at them).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from dash_support import Dash
from test_browser_pages import CHROMIUM, shoot

from resolver.build import policyedit
from resolver.http.admin import make_admin_app
from resolver.http.runner import start_http

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} not installed (tests/install-system-deps.sh)",
)

DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 375, "height": 740}, "is_mobile": True, "has_touch": True}
WIDTHS = {"desktop": DESKTOP, "phone": PHONE}
TIMEOUT = 60_000  # ms: a check compiles the policy in a child process on a busy machine


@pytest.fixture
async def admin_url(dash: Dash) -> AsyncIterator[str]:
    """The real admin app on loopback (admin access without a login, as on the box itself)."""
    app = make_admin_app(dash.control, token=None, store=dash.store, querylog=dash.log)
    site = await start_http(app, [("127.0.0.1", 0)])
    yield f"http://127.0.0.1:{site.addresses[0][1]}"
    await site.cleanup()


async def open_page(browser: Any, width: str, errors: list[str]) -> Any:
    # A browser whose clock is not the school's: times must still be the policy's.
    page = await browser.new_page(locale="vi-VN", timezone_id="UTC", **WIDTHS[width])
    page.set_default_timeout(TIMEOUT)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


# The texts reaching past the right edge: what a failure names.
WIDE = """() => {
  const edge = document.documentElement.clientWidth + 1, out = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n && out.length < 3; n = walk.nextNode()) {
    const range = document.createRange();
    range.selectNodeContents(n);
    const r = range.getBoundingClientRect();
    const where = `${n.parentElement.tagName}.${n.parentElement.className}`;
    if (r.right > edge) out.push(`${where}: ${n.textContent.slice(0, 60)}`);
  }
  return out;
}"""


async def no_sideways_scroll(page: Any) -> None:
    sizes = await page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert sizes[0] <= sizes[1] + 1, (sizes, await page.evaluate(WIDE))


@pytest.mark.parametrize("width", ["desktop", "phone"])
async def test_policy_edited_in_the_form_a_bad_edit_refused_then_undone(
    browser: Any, dash: Dash, admin_url: str, tmp_path: Path, width: str
) -> None:
    original = dash.policy.read_text()
    errors: list[str] = []
    page = await open_page(browser, width, errors)
    await page.goto(admin_url + "/dashboard/policy#profile=primary")
    primary = page.locator("#p-primary")
    await primary.wait_for()
    assert await page.locator("#p-teachers").is_hidden()  # one profile's form at a time
    assert await primary.locator("[name=allow]").input_value() == "olm.vn\nhocmai.vn"
    await no_sideways_scroll(page)

    # The edit: a name always blocked for pupils, and a service from the catalogue by its name;
    # checked and explained before saving.
    await primary.locator("[name=deny]").fill("tiktok.com")
    roblox = primary.get_by_label("Roblox")
    await roblox.select_option("block")
    await page.locator("#samples").fill("www.tiktok.com\nolm.vn")
    await page.locator("#preview").click()
    result = page.locator("#result")
    await result.get_by_text("Hợp lệ · Passes the check").wait_for()
    rows = result.locator("tbody tr")
    assert await rows.count() == 2
    assert (
        "block" in await rows.nth(0).inner_text()
        and "www.tiktok.com" in await rows.nth(0).inner_text()
    )
    assert "allow" in await rows.nth(1).inner_text()
    assert "+    deny: [tiktok.com]" in await result.locator("pre").inner_text()
    assert "+    block_services: [roblox]" in await result.locator("pre").inner_text()
    assert dash.policy.read_text() == original  # a check saves nothing
    if width == "phone":
        await no_sideways_scroll(page)  # the explain table is cards, the diff scrolls in its box
    await shoot(page, tmp_path, f"dashboard-policy-check-{width}.png")

    await page.locator("#save").click()
    await page.locator("#msg").get_by_text("Đã lưu · Saved").wait_for()
    saved = dash.policy.read_text()
    assert "deny: [tiktok.com]" in saved and dash.control.reloaded == 1
    assert "block_services: [roblox]" in saved
    assert [line for line in saved.splitlines() if "#" in line] == [
        line for line in original.splitlines() if "#" in line
    ]  # every comment kept
    assert await page.locator("#versions tr").count() == 1
    assert await page.locator("#undo").is_enabled()

    # A bad edit: refused with check's file:line:column message, nothing saved.
    await page.locator("#p-primary [name=allow]").fill("olm.vn\nhocmai.vn\nnot a domain!")
    await page.locator("#save").click()
    await page.locator("#msg").get_by_text("Không lưu").wait_for()
    problem = await page.locator("#result ul.problems li").first.inner_text()
    line = next(i for i, text in enumerate(saved.splitlines(), 1) if "allow:" in text)
    assert problem.startswith(f"{dash.policy}:{line}:") and "not a domain!" in problem
    assert dash.policy.read_text() == saved and dash.control.reloaded == 1
    await shoot(page, tmp_path, f"dashboard-policy-refused-{width}.png")

    # Undo: the file as it was before the save, and a reload.
    await page.locator("#undo").click()
    await page.locator("#msg").get_by_text("Đã khôi phục").wait_for()
    assert dash.policy.read_text() == original and dash.control.reloaded == 2
    assert policyedit.list_versions(dash.policy) == []
    await page.locator("#p-primary").wait_for()
    assert await page.locator("#p-primary [name=deny]").input_value() == ""  # the form reloaded
    assert await page.locator("#undo").is_disabled()
    refused = "the server responded with a status of 422"  # Chromium logs the refused save
    assert [e for e in errors if refused not in e] == [], errors
    await page.close()


# (page, a text a filled table shows, the table's body)
TABLES = [
    ("/dashboard/log", "static.xx.facebook.com", "#rows"),
    ("/dashboard/lists", "good-adult", "#lists"),
    ("/dashboard/reports", "http://scam.example/", "#reports"),
    ("/dashboard/history?period=week", "facebook.com", "#top"),
    ("/dashboard/profiles", "teachers", "#profiles"),
    ("/dashboard/profiles/primary", "lessons", "#schedules"),
]


@pytest.mark.parametrize("width", ["desktop", "phone"])
async def test_tables_are_usable_at_phone_width(
    browser: Any, dash: Dash, admin_url: str, tmp_path: Path, width: str
) -> None:
    errors: list[str] = []
    page = await open_page(browser, width, errors)
    for path, text, body in TABLES:
        await page.goto(admin_url + path)
        cell = page.locator(f"{body} td").filter(has_text=text).first
        await cell.wait_for()
        name = path.strip("/").split("?")[0].replace("/", "-")
        await shoot(page, tmp_path, f"{name}-{width}.png")
        head = page.locator(body).locator("xpath=..").locator("thead")
        box = await cell.bounding_box()
        assert box is not None
        if width == "phone":
            await no_sideways_scroll(page)
            assert await head.is_hidden(), path  # a card per row, each value with its label
            assert await cell.get_attribute("data-label"), path
            assert box["width"] > 300, (path, box)  # the card's width, not a sliver of a column
            assert box["height"] < 80, (path, box)  # a line or two, not a letter per line
        else:
            assert await head.is_visible(), path
            assert box["height"] < 80, (path, box)
        if path == "/dashboard/profiles/primary":  # a window's edge, on the school's clock
            when = await page.locator("#schedules tr").filter(has_text="lessons").inner_text()
            assert re.search("(07:00|11:30|13:30|17:00)", when), when
    if width == "phone":
        # The navigation folds behind the menu button and opens on a tap.
        nav = page.locator("#nav").get_by_role("link", name="Nhật ký · Query log")
        assert await nav.is_hidden()
        await page.locator("#nav-toggle").click()
        await nav.click()
        await page.locator("#rows td").first.wait_for()
        assert urlsplit(page.url).path == "/dashboard/log"
    assert not errors, errors
    await page.close()


async def test_a_schedule_added_in_the_form_and_given_to_a_profile(
    browser: Any, dash: Dash, admin_url: str, tmp_path: Path
) -> None:
    errors: list[str] = []
    page = await open_page(browser, "phone", errors)
    await page.goto(admin_url + "/dashboard/policy")
    await page.locator("#p-primary").wait_for()
    await page.get_by_role("button", name="Lịch · Schedules").click()
    await page.locator("#new-name").fill("exams")
    await page.locator("#new-schedule").click()
    exams = page.locator("#s-exams")
    await exams.locator("[name=windows]").fill("sat 07:00-11:00")
    await exams.locator("[data-name=block] input[value=games]").check()
    await page.get_by_role("button", name="Nhóm · Profiles").click()
    await page.locator("#p-primary [data-name=schedules] input[value=exams]").check()
    await page.locator("#save").click()
    await page.locator("#msg").get_by_text("Đã lưu · Saved").wait_for()
    await no_sideways_scroll(page)
    await shoot(page, tmp_path, "dashboard-policy-schedule-phone.png")
    data = yaml.safe_load(dash.policy.read_text())
    assert data["schedules"]["exams"] == {"windows": ["sat 07:00-11:00"], "block": ["games"]}
    assert data["profiles"]["primary"]["schedules"] == ["lessons", "always", "exams"]
    served = dash.control.snapshot.profiles["primary"].schedules  # what the reload put in force
    assert [s.name for s in served] == ["lessons", "always", "exams"] and dash.control.reloaded == 1
    assert not errors, errors
    await page.close()
