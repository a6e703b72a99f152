"""The ISP recipe end to end: dnsdist running deploy/isp/dnsdist.conf in front of two real
safe-resolver instances, subscribers on two packages sending load through it, one instance
killed, answers still coming with each subscriber's own profile."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest
from isp_support import (
    BLOCKED,
    FAMILY,
    STANDARD,
    answers_directly,
    instance,
    policy,
    profile_of,
    wait_for,
)
from support.authority import Authority
from support.dnsdist import RECIPE, DnsDist
from support.resolver_proc import ResolverFactory, metric

QUERIES_PER_CLIENT = 150
STREAK = 50  # answers in a row, each with the right profile, that show the survivor carries all
RECOVERY_DEADLINE = 20.0  # seconds for dnsdist to notice the dead instance (checks every 1 s)
WANT = {FAMILY: "family", STANDARD: "standard"}


def _ask(lb: DnsDist, client: str, timeout: float = 2.0) -> str:
    """The profile that answered `client` through dnsdist, or "lost"."""
    query = dns.message.make_query(BLOCKED, "A")
    try:
        answer = dns.query.udp(query, lb.host, port=lb.port, timeout=timeout, source=client)
    except dns.exception.Timeout:
        return "lost"
    return profile_of(answer)


def _queries(admin: int) -> float:
    return metric(admin, "safe_resolver_queries_total", transport="udp")


def test_two_instances_behind_dnsdist_survive_one_dying(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    path = policy(tmp_path)
    (first, first_admin), (second, second_admin) = (
        instance(resolver_proc, authority.address, path) for _ in range(2)
    )
    lb = DnsDist(tmp_path, [first.address, second.address], ["127.0.0.0/8"])
    try:
        lb.wait_answering(STANDARD)
        # Load from both subscribers at once: every answer carries the subscriber's profile.
        clients = [FAMILY, STANDARD] * QUERIES_PER_CLIENT
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda c: (c, _ask(lb, c)), clients))
        wrong = [(c, got) for c, got in results if got not in (WANT[c], "lost")]
        assert not wrong, wrong[:5]
        assert Counter(got for _, got in results)["lost"] <= len(results) // 100
        # dnsdist spread it over both instances.
        wait_for("both instances to count queries", lambda: _queries(first_admin) > 0)
        wait_for("both instances to count queries", lambda: _queries(second_admin) > 0)

        first.proc.send_signal(signal.SIGKILL)  # a crash: no goodbye to dnsdist
        first.proc.wait(10)
        first.stopped = True
        wait_for("its workers to go too", lambda: not answers_directly(first))
        # Until dnsdist's health checks mark it down some queries may be lost (UDP is not
        # retried); after that every answer comes, from the survivor, with the right profile.
        lost, streak, deadline = 0, 0, time.monotonic() + RECOVERY_DEADLINE
        while streak < STREAK:
            assert time.monotonic() < deadline, f"no {STREAK} answers in a row; {lb.output()}"
            client = (FAMILY, STANDARD)[streak % 2]
            got = _ask(lb, client, timeout=0.5)
            assert got in (WANT[client], "lost"), (client, got)
            lost, streak = (lost + 1, 0) if got == "lost" else (lost, streak + 1)
        before = _queries(second_admin)
        for i in range(QUERIES_PER_CLIENT):
            client = (FAMILY, STANDARD)[i % 2]
            assert _ask(lb, client) == WANT[client]
        wait_for(
            "the survivor to count them",
            lambda: _queries(second_admin) >= before + QUERIES_PER_CLIENT,
        )
        print(f"queries lost while dnsdist noticed the dead instance: {lost}")
    finally:
        lb.stop()


def test_the_recipe_is_valid_dnsdist_configuration() -> None:
    """The file as shipped (production addresses) passes dnsdist's own check."""
    exe = shutil.which("dnsdist")
    if exe is None:
        pytest.skip("dnsdist not installed (Debian package dnsdist)")
    result = subprocess.run(
        [exe, "--check-config", "-C", str(RECIPE)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
