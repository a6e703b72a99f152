"""Repeated answers behind dnsdist come from the fast path's table, on both UDP paths (the
compiled one and SAFE_RESOLVER_PURE=1): dnsdist running the recipe in front of one instance,
two subscribers of different packages ask the same name through it, each gets its own
package's answer every time, and all but their first answers (first two where the name went
upstream) are counted as fast answers."""

from __future__ import annotations

import random
from collections.abc import Iterator

import dns.message
import dns.query
import pytest
from isp_support import BLOCKED, FAMILY, STANDARD, instance, policy, profile_of, wait_metric
from support.authority import Authority
from support.dnsdist import DnsDist
from support.resolver_proc import (  # noqa: F401  (both_datapaths: compiled and pure paths)
    ResolverFactory,
    both_datapaths,
    datapath_env,
    metric,
)

ROUNDS = 20  # queries per subscriber
WANT = {FAMILY: "family", STANDARD: "standard"}  # BLOCKED: NXDOMAIN, or resolved upstream
FAST = "safe_resolver_fast_answers_total"


@pytest.fixture(scope="module")
def behind_dnsdist(
    _session_authority: Authority, tmp_path_factory: pytest.TempPathFactory, datapath: str
) -> Iterator[tuple[DnsDist, int]]:
    """dnsdist in front of one instance: (dnsdist, the instance's admin port)."""
    folder = tmp_path_factory.mktemp("dnsdist-fast")
    factory = ResolverFactory(folder, datapath_env(datapath))
    _, admin = instance(factory, _session_authority.address, policy(folder))
    lb = None
    try:
        lb = DnsDist(folder, [factory.running[0].address], ["127.0.0.0/8"])
        lb.wait_answering(STANDARD)
        yield lb, admin
    finally:
        if lb is not None:
            lb.stop()
        problems = factory.stop_all()
    if problems:
        pytest.fail("\n\n".join(problems))


def test_repeats_behind_dnsdist_come_from_the_table_per_subscriber(
    behind_dnsdist: tuple[DnsDist, int],
) -> None:
    lb, admin = behind_dnsdist
    rng = random.Random(7)
    before = metric(admin, FAST)
    for _ in range(ROUNDS):
        for client in (FAMILY, STANDARD):
            name = "".join(c.upper() if rng.random() < 0.5 else c for c in BLOCKED)
            query = dns.message.make_query(name, "A")
            answer = dns.query.udp(query, lb.host, port=lb.port, timeout=3, source=client)
            assert profile_of(answer) == WANT[client], (client, answer)
            assert answer.question[0].name.labels == query.question[0].name.labels  # 0x20
    # family: the first two decided in Python (the second sighting is stored); standard: the
    # first went upstream, the second was the first cache hit (stored at once). Every other
    # answer came from the table, through dnsdist.
    repeated = (ROUNDS - 2) + (ROUNDS - 2)
    assert wait_metric(admin, FAST, before + repeated) == before + repeated
