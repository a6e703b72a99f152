"""Fixtures: one real resolver per test module serving the school (school_support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from school_support import Api, School, write_school
from support.authority import Authority
from support.resolver_proc import ResolverFactory

from resolver.expiry import CLOCK_OFFSET_ENV


@pytest.fixture(scope="module")
def school_server(
    _session_authority: Authority, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[School]:
    folder = tmp_path_factory.mktemp("school")
    clock = folder / "clock-offset"
    clock.write_text("0\n")
    _, overrides = write_school(folder)
    factory = ResolverFactory(folder)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CLOCK_OFFSET_ENV, str(clock))
        rp = factory([_session_authority.address], **overrides)
    yield School(rp, folder, int(overrides["admin"]["listen"][0].rsplit(":", 1)[1]), clock)
    problems = factory.stop_all()
    if problems:
        pytest.fail("\n\n".join(problems))


@pytest.fixture
def school(school_server: School) -> Iterator[School]:
    """The module's server; after each test its clock is back at the real time and the
    overlay entries the test left are revoked."""
    yield school_server
    school_server.move_clock(0)
    admin = Api(school_server, token=True)
    for entry in admin.get("/api/v1/overlay")[1]["entries"]:
        admin.call("DELETE", f"/api/v1/overlay/{entry['id']}")
