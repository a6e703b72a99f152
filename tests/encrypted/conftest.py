"""Fixtures: two resolvers per module with DoT, DoH and DoQ (encrypted_support).

`lan` answers loopback by address too (loopback is in access.allow, as a school network is);
`internet` does not (loopback is outside access.allow), so there only an identity gets answers,
as on a listener facing phones on mobile data.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from encrypted_support import Encrypted, start
from support.authority import Authority
from support.resolver_proc import ResolverFactory


@pytest.fixture(scope="module")
def lan(
    _session_authority: Authority, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Encrypted]:
    directory = tmp_path_factory.mktemp("lan")
    factory = ResolverFactory(directory)
    yield start(factory, directory, _session_authority, ["127.0.0.0/8"])
    problems = factory.stop_all()
    if problems:
        pytest.fail("\n\n".join(problems))


@pytest.fixture(scope="module")
def internet(
    _session_authority: Authority, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Encrypted]:
    directory = tmp_path_factory.mktemp("internet")
    factory = ResolverFactory(directory)
    yield start(
        factory, directory, _session_authority, ["10.0.0.0/8"], encrypted={"handshake_timeout": 2}
    )
    problems = factory.stop_all()
    if problems:
        pytest.fail("\n\n".join(problems))
