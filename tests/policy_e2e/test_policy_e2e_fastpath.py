"""Policy answers the UDP fast path repeats (both paths, see conftest.py) never outlive the
policy that made them: the answer after a reload is the new policy's, at once, both ways
(a blocked answer repeated until its minute ends, an allowed cache answer); a profile whose
queries are logged reaches the query log with every query."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from pathlib import Path
from typing import Any

import dns.rcode
from policy_e2e_support import ALLOWED_V4, ask, records, server_overrides, write_policy
from support.authority import Authority
from support.resolver_proc import ResolverFactory, free_port

FLIP = "flip.w.example.org"


def policy(*deny: str, log: bool = False) -> dict[str, Any]:
    return {
        "version": 1,
        "clients": {"default": "kids"},
        "profiles": {
            "kids": {
                "age": "unrestricted",
                "deny": list(deny),
                "block_mode": "nxdomain",
                "log": log,
            },
        },
        "lists": {"dir": "lists", "catalogue_sources": False},
    }


def outcome(rp: Any, name: str) -> str:
    resp = ask(rp, name, "A")
    if resp.rcode() == dns.rcode.NXDOMAIN:
        return "nxdomain"
    return "allowed" if records(resp, "A") == [ALLOWED_V4] else f"other {resp}"


def reload(admin: str) -> None:
    request = urllib.request.Request(f"{admin}/api/v1/reload", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=60) as resp:  # returns once every worker swapped
        assert json.loads(resp.read())["ok"]


def test_a_reload_changes_repeated_answers_at_once(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    path = write_policy(tmp_path / "policy.yaml", policy(FLIP))
    admin = free_port()
    overrides = server_overrides(path) | {"admin": {"listen": [f"127.0.0.1:{admin}"]}}
    rp = resolver_proc([authority.address], **overrides)
    url = f"http://127.0.0.1:{admin}"
    assert [outcome(rp, FLIP) for _ in range(5)] == [
        "nxdomain"
    ] * 5  # repeated until the minute ends
    write_policy(path, policy())
    reload(url)
    assert [outcome(rp, FLIP) for _ in range(5)] == ["allowed"] * 5  # cached, repeated
    write_policy(path, policy(FLIP))
    reload(url)
    assert outcome(rp, FLIP) == "nxdomain"


def test_a_logged_profile_logs_every_query(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    path = write_policy(tmp_path / "policy.yaml", policy(FLIP, log=True))
    db = tmp_path / "querylog.sqlite"
    rp = resolver_proc([authority.address], **server_overrides(path), querylog={"path": str(db)})
    for _ in range(10):
        assert outcome(rp, FLIP) == "nxdomain"
    assert rp.terminate() == 0  # the log is flushed on the way out
    with sqlite3.connect(db) as conn:
        logged = conn.execute("SELECT count(*) FROM queries WHERE qname = ?", (FLIP,))
        assert logged.fetchone()[0] == 10
