"""The HTTPS block page in a real headless Chromium against the real server: with the school CA
trusted (in the NSS database Chromium reads on Linux, `$HOME/.pki/nssdb`, written with
certutil), https://blocked.example/ shows the block page; with a fresh profile that does not
trust it, Chromium stops at its certificate error (ERR_CERT_AUTHORITY_INVALID), which is what
devices without the CA see."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support.authority import Authority
from support.blockpage_https import BLOCKED, start
from support.resolver_proc import ResolverFactory
from test_browser_pages import ARGS, CHROMIUM, shoot

pytestmark = [
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} not installed"),
    pytest.mark.skipif(
        shutil.which("certutil") is None, reason="certutil not installed (libnss3-tools)"
    ),
]


def nss_home(directory: Path, ca_cert: Path | None) -> Path:
    """A HOME whose NSS database trusts `ca_cert` for websites (none: an empty database)."""
    db = directory / ".pki" / "nssdb"
    db.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True)
    if ca_cert is not None:
        subprocess.run(
            ["certutil", "-A", "-d", f"sql:{db}", "-n", "school-ca", "-t", "C,,", "-i",
             str(ca_cert)],
            check=True,
        )  # fmt: skip
    return directory


async def open_blocked(home: Path, port: int, width: int):  # type: ignore[no-untyped-def]
    from playwright.async_api import async_playwright

    rules = f"--host-resolver-rules=MAP {BLOCKED} 127.0.0.1"
    args = [a for a in ARGS if not a.startswith("--host-resolver-rules")] + [rules]
    p = await async_playwright().start()
    browser = await p.chromium.launch(
        executable_path=CHROMIUM, args=args, headless=True, env={**os.environ, "HOME": str(home)}
    )
    page = await browser.new_page(viewport={"width": width, "height": 900}, locale="vi-VN")
    return p, browser, page


async def test_https_block_page_with_the_ca_trusted_and_an_error_without(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    pytest.importorskip("playwright.async_api")
    site = start(resolver_proc, authority.address, tmp_path / "server")
    url = f"https://{BLOCKED}:{site.https}/lesson?v=1"
    trusted = nss_home(tmp_path / "trusted", site.ca_cert)
    for width in (1000, 390):  # desktop and phone
        p, browser, page = await open_blocked(trusted, site.https, width)
        try:
            response = await page.goto(url)
            assert response is not None and response.status == 200
            await page.get_by_text("Trang này đã bị chặn").wait_for()
            assert await page.get_by_role("link", name="111", exact=True).is_visible()
            assert await page.get_by_text("Lớp 10A1").is_visible()
            await shoot(page, tmp_path, f"blockpage-https-{width}.png")
        finally:
            await browser.close()
            await p.stop()
    untrusted = nss_home(tmp_path / "untrusted", None)
    p, browser, page = await open_blocked(untrusted, site.https, 1000)
    try:
        with pytest.raises(Exception, match="ERR_CERT_AUTHORITY_INVALID"):
            await page.goto(url)
    finally:
        await browser.close()
        await p.stop()
