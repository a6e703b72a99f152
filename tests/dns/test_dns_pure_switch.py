"""resolver/pure.py: SAFE_RESOLVER_PURE=1 and a part that is not built both leave its pure-Python
twin serving; otherwise the compiled part serves."""

from __future__ import annotations

import sys

import pytest

from resolver.pure import PURE_ENV, serves_compiled

PARTS = [
    "resolver.dns._fastpath",
    "resolver.match._packed",
    "resolver.dns._untrack",
    "resolver.dns._question",
]


@pytest.mark.parametrize("module", PARTS)
def test_a_built_part_serves_unless_pure_is_asked(module: str, monkeypatch) -> None:
    pytest.importorskip(module, reason="the C part is not built here")
    monkeypatch.delenv(PURE_ENV, raising=False)
    assert serves_compiled(module)
    monkeypatch.setenv(PURE_ENV, "1")
    assert not serves_compiled(module)


@pytest.mark.parametrize("module", PARTS)
def test_a_part_that_is_not_built_never_serves(module: str, monkeypatch) -> None:
    monkeypatch.delenv(PURE_ENV, raising=False)
    monkeypatch.setitem(sys.modules, module, None)  # what a failed import leaves: ImportError
    assert not serves_compiled(module)
