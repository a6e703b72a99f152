"""Every DNS end-to-end test runs against both UDP paths: the compiled fast path and the pure
Python one (`datapath` overrides the session default of tests/conftest.py)."""

from __future__ import annotations

from support.resolver_proc import both_datapaths  # noqa: F401  (the `datapath` fixture)
