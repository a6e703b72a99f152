"""The HTML report for the authorities in a real headless Chromium: on a phone (360 px) and a
desktop it fits the screen without sideways scrolling, states the time zone and the day with no
data, and prints to A4 PDF pages.

Screenshots land in tmp_path (and in $SR_SCREENSHOT_DIR when set: the README's sample,
docs/report-sample.png, is made so).
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support.traffic import HCM, week, write_week

from resolver.http.i18n import _catalogue_names
from resolver.http.report_html import to_html
from resolver.rollup import Batch
from resolver.store.audit import AuditEntry, record_list_version
from resolver.store.reports import build_report, period_between
from resolver.store.sqlite import SqliteQueryStore

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
WIDTHS = {"phone": 360, "desktop": 1280}

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} not installed (tests/install-system-deps.sh)",
)


@pytest.fixture
def report_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(
        "SAFE_RESOLVER_BLOCKLISTS", str(Path(__file__).resolve().parents[2] / "blocklists")
    )
    _catalogue_names.cache_clear()
    store = SqliteQueryStore(tmp_path / "q.sqlite")
    write_week(store, week())
    requests = {("2025-03-04", "unblock_approved"): 2, ("2025-03-05", "unblock_rejected"): 1,
                ("2025-03-07", "content_report"): 3}  # fmt: skip
    store.write_rollups(Batch(requests=requests), "gw-1")

    class Sink:
        def audit(self, entry: AuditEntry) -> None:
            store.write_audit([entry], "gw-1")

    for gen, day, digest, rules in [(1, 3, "5f1c0e9a", 41_873), (4, 7, "c2d94b17", 42_016)]:
        at = datetime(2025, 3, day, 6, 30, tzinfo=HCM).timestamp()
        store.write_audit([AuditEntry(at, "reload", generation=gen, cause="sighup",
                                      result="ok")], "gw-1")  # fmt: skip
        record_list_version(
            Sink(), source="bo-tt-tt-mandated", category="mandated", rules=rules, generation=gen,
            at=at, path="/var/lib/safe-resolver/mandated.rpz", digest=digest * 8,
            fetched_at=f"2025-03-0{day - 1}T23:05:12Z",
        )  # fmt: skip
    report = build_report(
        store,
        period_between("2025-03-01", "2025-03-09"),
        organisation={
            "name": "Trường THCS Nguyễn Du (Nguyen Du lower-secondary school)",
            "address": "12 Lê Lợi, phường Phú Hội, thành phố Huế",
            "contact": "Phòng CNTT / IT office, 0234 3822 123",
        },
        now=datetime(2025, 3, 10, 8, 15, tzinfo=HCM).timestamp(),
    )
    store.close()
    path = tmp_path / "report.html"
    path.write_text(to_html(report), encoding="utf-8")
    _catalogue_names.cache_clear()
    return path


@pytest.fixture
async def browser() -> Any:
    playwright = pytest.importorskip("playwright.async_api")
    async with playwright.async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        await b.close()


@pytest.mark.parametrize("device", list(WIDTHS))
async def test_the_report_fits_the_screen_and_states_its_time_zone(
    report_file: Path, browser: Any, tmp_path: Path, device: str
) -> None:
    width = WIDTHS[device]
    page = await browser.new_page(viewport={"width": width, "height": 800}, locale="vi-VN")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("requestfailed", lambda r: errors.append(f"request {r.url}"))
    await page.goto(report_file.as_uri())
    fits = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth,"
        " Math.max(...[...document.querySelectorAll('body *')].map("
        "e => e.getBoundingClientRect().right))]"
    )
    scroll_width, client_width, rightmost = fits
    assert scroll_width <= client_width == width, fits  # no sideways scrolling
    assert rightmost <= width + 0.5, fits
    assert await page.get_by_text("Asia/Ho_Chi_Minh (UTC+07:00)").is_visible()
    banner = page.locator(".banner.gap")
    assert await banner.is_visible()
    assert "2025-03-06" in await banner.inner_text()  # the day the server was down
    assert "2025-03-01 – 2025-03-02" in await banner.inner_text()  # before it ran
    assert errors == []
    path = tmp_path / f"report-{device}.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    if os.environ.get("SR_SCREENSHOT_DIR"):
        shutil.copy(path, Path(os.environ["SR_SCREENSHOT_DIR"]) / path.name)
    if device == "desktop":
        pdf = await page.pdf(format="A4", print_background=True)
        assert pdf.startswith(b"%PDF") and len(pdf) > 20_000
    await page.close()
