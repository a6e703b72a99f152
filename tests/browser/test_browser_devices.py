"""The device set-up page in a real headless Chromium at phone and desktop widths: every
system's setting is shown, nothing overflows the screen, and the profile it downloads is a
valid Apple configuration profile (plistlib)."""

from __future__ import annotations

import os
import plistlib
from pathlib import Path

import pytest
from test_browser_pages import CHROMIUM, new_page, shoot
from web_support import AN_TOKEN, ControlImpl

from resolver.http.admin import make_admin_app
from resolver.http.runner import start_http

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} not installed (tests/install-system-deps.sh)",
)
WIDTHS = {"phone": (390, 844), "desktop": (1280, 900)}


@pytest.fixture
async def admin_port(tmp_path: Path):  # type: ignore[no-untyped-def]
    app = make_admin_app(ControlImpl(tmp_path / "overlay.yaml"), token=None, store=None,
                         querylog=None)  # fmt: skip
    runner = await start_http(app, [("127.0.0.1", 0)])
    yield runner.addresses[0][1]
    await runner.cleanup()


@pytest.mark.parametrize("width", sorted(WIDTHS))
async def test_device_page_renders_and_downloads_a_profile(
    admin_port: int,
    browser,
    tmp_path: Path,
    width: str,  # type: ignore[no-untyped-def]
) -> None:
    errors: list[str] = []
    page = await new_page(browser, errors)
    w, h = WIDTHS[width]
    await page.set_viewport_size({"width": w, "height": h})
    await page.goto(f"http://127.0.0.1:{admin_port}/devices")
    await page.get_by_role("link", name="an-phone").click()
    await page.locator("#dot-host").wait_for()
    assert await page.locator("#dot-host").inner_text() == f"{AN_TOKEN}-family.dns.example.vn"
    assert AN_TOKEN in await page.locator("#doh-url").inner_text()
    assert await page.get_by_text("DNS riêng tư", exact=False).first.is_visible()
    qr = page.locator("figure.qr svg")
    assert await qr.is_visible()
    box = await qr.bounding_box()
    assert box is not None and 100 < box["width"] <= w
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a {width} screen"
    await shoot(page, tmp_path, f"device-{width}-vi.png")

    async with page.expect_download() as info:
        await page.locator("#get-doh").click()
    download = await info.value
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    assert saved.name == "an-phone-doh.mobileconfig"
    profile = plistlib.loads(saved.read_bytes())
    (payload,) = profile["PayloadContent"]
    assert payload["PayloadType"] == "com.apple.dnsSettings.managed"
    assert payload["DNSSettings"]["ServerURL"].endswith(f"/dns-query/family/{AN_TOKEN}")

    await page.get_by_role("link", name="English").click()
    await page.get_by_text("Private DNS provider hostname", exact=False).wait_for()
    await shoot(page, tmp_path, f"device-{width}-en.png")
    assert errors == []
