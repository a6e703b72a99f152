"""The block page and the dashboard in a real headless Chromium (Debian's), driven by Playwright.

Chromium resolves the blocked name to 127.0.0.1 through `--host-resolver-rules`, so the page is
reached exactly as a child's browser would after the resolver answered with our address.
Screenshots land in tmp_path (and in $SR_SCREENSHOT_DIR when set, to look at them).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml
from web_support import ControlImpl

from resolver.http.admin import make_admin_app
from resolver.http.blockpage import make_blockpage_app
from resolver.http.i18n import _catalogue_names
from resolver.http.runner import start_http
from resolver.store.sqlite import SqliteRequestStore

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--host-resolver-rules=MAP adult.example 127.0.0.1"]  # fmt: skip

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} not installed (tests/install-system-deps.sh)",
)


@pytest.fixture
async def servers(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(
        "SAFE_RESOLVER_BLOCKLISTS", str(Path(__file__).resolve().parents[2] / "blocklists")
    )
    _catalogue_names.cache_clear()
    control = ControlImpl(tmp_path / "overlay.yaml")
    store = SqliteRequestStore(tmp_path / "requests.sqlite")
    block = await start_http(make_blockpage_app(control, store=store), [("127.0.0.1", 0)])
    admin = await start_http(
        make_admin_app(control, token=None, store=store, querylog=None), [("127.0.0.1", 0)]
    )
    yield control, store, block.addresses[0][1], admin.addresses[0][1]
    await block.cleanup()
    await admin.cleanup()
    store.close()
    _catalogue_names.cache_clear()


async def new_page(browser, errors: list[str]):
    # A Vietnamese browser: Accept-Language vi-VN (Chromium's default would be en-US).
    page = await browser.new_page(viewport={"width": 1000, "height": 1100}, locale="vi-VN")
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


async def shoot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # a real rendering, not a blank image
    if os.environ.get("SR_SCREENSHOT_DIR"):
        shutil.copy(path, Path(os.environ["SR_SCREENSHOT_DIR"]) / name)


async def test_block_page_shows_hotline_and_category_and_takes_a_request(
    servers, browser, tmp_path: Path
):
    _control, store, block_port, _ = servers
    errors: list[str] = []
    page = await new_page(browser, errors)
    await page.goto(f"http://adult.example:{block_port}/videos/watch?v=1")
    await page.get_by_role("link", name="111", exact=True).wait_for()
    assert await page.get_by_role("link", name="111", exact=True).is_visible()
    assert await page.get_by_text("Nội dung người lớn").is_visible()
    assert await page.get_by_text("Trang này đã bị chặn").is_visible()
    await shoot(page, tmp_path, "blockpage-vi.png")

    await page.get_by_text("English", exact=True).click()
    await page.get_by_text("This page is blocked").wait_for()
    assert await page.get_by_text("Adult content").is_visible()
    await page.locator("summary", has_text="Request unblocking").click()
    await page.locator("#note-u").fill("Needed for biology class")
    await page.get_by_role("button", name="Send request").click()
    await page.get_by_text("The unblock request has been sent").wait_for()
    await shoot(page, tmp_path, "blockpage-en-thanks.png")
    (row,) = store.list_unblock()
    assert row["host"] == "adult.example" and row["note"] == "Needed for biology class"
    assert errors == []


async def test_dashboard_shows_figures_and_approves_a_request(servers, browser, tmp_path: Path):
    control, store, _, admin_port = servers
    store.add_unblock("adult.example", "students", "adult", "biology class")
    errors: list[str] = []
    page = await new_page(browser, errors)
    await page.goto(f"http://127.0.0.1:{admin_port}/dashboard")
    await page.locator("#requests").get_by_text("adult.example").wait_for()
    assert await page.locator("#categories").get_by_text("Nội dung người lớn · Adult content")\
        .is_visible()  # fmt: skip
    assert await page.locator("#c-total").inner_text() == "102"
    assert await page.locator("#upstreams").get_by_text("lỗi · down").is_visible()
    await shoot(page, tmp_path, "dashboard.png")
    await page.get_by_role("button", name="Duyệt · Approve").click()
    await page.get_by_text("approved").wait_for()
    await page.get_by_text("No pending requests").wait_for()
    overlay = yaml.safe_load((tmp_path / "overlay.yaml").read_text(encoding="utf-8"))
    assert overlay["allow"][0]["name"] == "adult.example"
    assert control.block_reason("127.0.0.1", "adult.example") is None
    assert errors == []
