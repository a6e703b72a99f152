"""Shared fixtures: the local upstream authority and the real resolver run as a subprocess.

`tests/` has no `__init__.py`, so pytest puts it on `sys.path` and `support` imports as a package.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.authority import Authority
from support.resolver_proc import ResolverFactory, ResolverProc, datapath_env


@pytest.fixture(scope="session")
def _session_authority() -> Iterator[Authority]:
    with Authority() as authority:
        yield authority


@pytest.fixture
def authority(_session_authority: Authority) -> Authority:
    """The local upstream authority, with faults and query records cleared for this test."""
    _session_authority.reset()
    return _session_authority


@pytest.fixture(scope="session")
def datapath() -> str:
    """The UDP path resolvers serve with; suites run on both override it (datapath_params)."""
    return "default"


@pytest.fixture
def resolver_proc(tmp_path: Path, datapath: str) -> Iterator[ResolverFactory]:
    """Factory: `resolver_proc([upstream, ...], **config_overrides)` -> a running resolver."""
    factory = ResolverFactory(tmp_path, datapath_env(datapath))
    yield factory
    problems = factory.stop_all()
    if problems:
        pytest.fail("\n\n".join(problems))


@pytest.fixture(scope="module")
def shared_resolver(
    _session_authority: Authority, tmp_path_factory: pytest.TempPathFactory, datapath: str
) -> Iterator[ResolverProc]:
    """One resolver per test module forwarding to the authority (tests use unique names)."""
    factory = ResolverFactory(tmp_path_factory.mktemp("resolver"), datapath_env(datapath))
    yield factory([_session_authority.address])
    problems = factory.stop_all()
    if problems:
        pytest.fail("\n\n".join(problems))
