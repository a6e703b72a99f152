"""Browser tests reuse the web tests' in-memory control (tests/http/web_support.py) and share
one headless Chromium launch per test (`browser`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))


@pytest.fixture
async def browser():  # type: ignore[no-untyped-def]
    from test_browser_pages import ARGS, CHROMIUM

    playwright = pytest.importorskip("playwright.async_api")
    async with playwright.async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        await b.close()
