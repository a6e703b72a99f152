"""Fail closed on a live server: a mandated list file that disappears keeps blocking (its last
good copy), the reload says so, and a delivery that would shrink the mandated list is refused
until the operator confirms it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import dns.rcode
from support.authority import Authority
from support.resolver_proc import ResolverFactory, free_port

POLICY = """\
version: 1
clients: {default: everyone}
profiles:
  everyone: {age: unrestricted, block_mode: nxdomain}
mandated:
  block_mode: nxdomain
  sources:
    - {id: authority, path: mandated.rpz, format: rpz}
lists: {dir: lists, catalogue_sources: false}
"""
RPZ = "$TTL 300\n@ SOA localhost. root.localhost. 1 3600 600 86400 60\n@ NS localhost.\n"


def zone(*names: str) -> str:
    return RPZ + "".join(f"{n} CNAME .\n*.{n} CNAME .\n" for n in names)


def reload(admin: str, query: str = "") -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"{admin}/api/v1/reload{query}", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_missing_mandated_list_keeps_blocking_and_a_shrink_is_refused(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    mandated = tmp_path / "mandated.rpz"
    banned = [f"banned{n}.w.example.org" for n in range(10)]
    mandated.write_text(zone(*banned))
    port = free_port()
    admin = f"http://127.0.0.1:{port}"
    rp = resolver_proc(
        [authority.address],
        policy=str(tmp_path / "policy.yaml"),
        admin={"listen": [f"127.0.0.1:{port}"]},
        workers=2,
    )
    assert rp.query("www.banned3.w.example.org").rcode() == dns.rcode.NXDOMAIN

    mandated.unlink()
    status, result = reload(admin)
    assert status == 200 and result["ok"]
    assert any("LIST MISSING: 'authority' (mandated)" in line for line in result["warnings"])
    for _ in range(20):  # every worker still blocks
        assert rp.query("www.banned3.w.example.org").rcode() == dns.rcode.NXDOMAIN

    mandated.write_text(zone(*banned[:2]))  # a truncated delivery: 2 rules of 10
    status, result = reload(admin)
    assert status == 422 and not result["ok"]
    assert "mandated list would shrink from 10 to 2 rules" in result["error"]
    assert rp.query("www.banned7.w.example.org").rcode() == dns.rcode.NXDOMAIN
    assert "policy reload failed" in rp.output()

    status, result = reload(admin, "?accept_shrink=1")  # the operator confirms it
    assert status == 200 and result["ok"]
    assert rp.query("www.banned7.w.example.org").rcode() == dns.rcode.NOERROR
    assert rp.query("www.banned1.w.example.org").rcode() == dns.rcode.NXDOMAIN


def test_explain_finds_the_line_of_a_rule_deep_in_a_big_list(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    """The line is a byte search in a thread of the supervisor: DNS (in the workers) goes on."""
    big = tmp_path / "big.txt"
    with big.open("w") as out:
        out.writelines(f"host{n}.big{n % 101}.test\n" for n in range(200_000))
        out.write("deep-rule.w.example.org\n")
    (tmp_path / "policy.yaml").write_text(
        "version: 1\nclients: {default: everyone}\n"
        "profiles:\n  everyone: {age: unrestricted, block: [adult], block_mode: nxdomain}\n"
        "lists:\n  dir: lists\n  catalogue_sources: false\n  sources:\n"
        "    - {id: big, category: adult, path: big.txt, format: domains}\n"
    )
    port = free_port()
    rp = resolver_proc(
        [authority.address],
        policy=str(tmp_path / "policy.yaml"),
        admin={"listen": [f"127.0.0.1:{port}"]},
    )
    url = (
        f"http://127.0.0.1:{port}/api/v1/explain?client=127.0.0.1&name=www.deep-rule.w.example.org"
    )
    with urllib.request.urlopen(url, timeout=30) as resp:
        report = json.loads(resp.read())
    assert report["rule"] == "deep-rule.w.example.org" and report["line"] == 200_001
    assert rp.query("www.deep-rule.w.example.org").rcode() == dns.rcode.NXDOMAIN
