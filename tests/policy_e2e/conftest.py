"""Fixtures: one resolver per test module serving the test school policy (policy_e2e_support),
once per UDP path (compiled fast path, pure Python)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from policy_e2e_support import Served, school_policy, server_overrides, write_lists, write_policy
from support.authority import Authority
from support.resolver_proc import ResolverFactory, datapath_env, datapath_params


@pytest.fixture(scope="module", params=datapath_params())
def datapath(request: pytest.FixtureRequest) -> str:
    """Every test here runs against the compiled UDP fast path and the pure-Python one."""
    return str(request.param)


@pytest.fixture(scope="module")
def served(
    _session_authority: Authority, tmp_path_factory: pytest.TempPathFactory, datapath: str
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("policy-e2e")
    policy = write_policy(folder / "policy.yaml", school_policy(write_lists(folder)))
    factory = ResolverFactory(folder, datapath_env(datapath))
    rp = factory([_session_authority.address], **server_overrides(policy))
    yield Served(rp, policy)
    problems = factory.stop_all()
    if problems:
        pytest.fail("\n\n".join(problems))
