"""Fixtures: one resolver per test module serving the test school policy (policy_e2e_support),
once per UDP path (compiled fast path, pure Python)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from policy_e2e_support import Served, school_policy, server_overrides, write_lists, write_policy
from support.authority import Authority
from support.resolver_proc import (  # noqa: F401  (both_datapaths: every test on both UDP paths)
    ResolverFactory,
    both_datapaths,
    datapath_env,
)


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
