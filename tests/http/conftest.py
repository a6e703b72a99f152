"""Fixtures for the web-app tests: the in-memory control, real stores in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web_support import ControlImpl

from resolver.http.i18n import _catalogue_names
from resolver.store.sqlite import SqliteRequestStore


@pytest.fixture(autouse=True)
def bundled_catalogue(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Category names from the repository's own catalogue, whatever the install looks like."""
    monkeypatch.setenv(
        "SAFE_RESOLVER_BLOCKLISTS", str(Path(__file__).resolve().parents[2] / "blocklists")
    )
    _catalogue_names.cache_clear()
    yield
    _catalogue_names.cache_clear()


@pytest.fixture
def control(tmp_path: Path) -> ControlImpl:
    return ControlImpl(tmp_path / "overlay.yaml")


@pytest.fixture
def request_store(tmp_path: Path) -> Iterator[SqliteRequestStore]:
    store = SqliteRequestStore(tmp_path / "requests.sqlite")
    yield store
    store.close()
