"""Every DNS end-to-end test runs against both UDP paths: the compiled fast path and the pure
Python one (`datapath` overrides the session default of tests/conftest.py)."""

from __future__ import annotations

import pytest
from support.resolver_proc import datapath_params


@pytest.fixture(scope="module", params=datapath_params())
def datapath(request: pytest.FixtureRequest) -> str:
    return str(request.param)
