"""Fixtures for the zone-transfer tests: a real Knot primary (skipped only without knotd)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.knot import KnotPrimary, knotd_path


@pytest.fixture
def knot(tmp_path: Path) -> Iterator[Callable[..., KnotPrimary]]:
    """Factory: `knot({zone: text}, notify_port=None, port=None)` -> a started knotd; all
    stopped after."""
    if knotd_path() is None:
        pytest.skip("knotd is not installed (Debian package knot; tests/install-system-deps.sh)")
    started: list[KnotPrimary] = []

    def start(
        zones: dict[str, str], *, notify_port: int | None = None, port: int | None = None
    ) -> KnotPrimary:
        folder = tmp_path / f"knot-{len(started)}"
        primary = KnotPrimary(folder, zones, notify_port=notify_port, port=port)
        started.append(primary)
        return primary.start()

    yield start
    for primary in started:
        primary.stop()
