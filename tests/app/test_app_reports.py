"""The reports end to end: the real resolver with two workers answers real queries, counts them
in roll-ups (a `log: false` profile too, an RPZ rewrite of a mandated name as mandated), writes
them with the query log's writer, records its reloads and the mandated list's versions in the
audit trail; after it stops, `report` gives what /metrics counted, and again after `purge --all`.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dns.message
import dns.query
import dns.rcode
import jsonschema
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from support.authority import Authority
from support.resolver_proc import ResolverFactory, ResolverProc, free_port
from support.waiting import wait_for

from resolver.cli import main
from resolver.store.reports import load_schema

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
KIDS, STANDARD = "127.0.1.1", "127.0.0.1"  # `kids` logs; `standard` (the default) does not
RPZ = """\
$TTL 300
@ SOA localhost. root.localhost. {serial} 3600 600 86400 300
@ NS localhost.
banned.w.example.org CNAME .
redirect.w.example.org CNAME warning.w.example.org.
{more}
"""


def policy(rpz: Path) -> dict[str, Any]:
    return {
        "version": 1,
        "timezone": "Asia/Ho_Chi_Minh",
        "clients": {"default": "standard", "networks": {"127.0.1.0/24": "kids"}},
        "profiles": {
            "kids": {
                "age": "unrestricted",
                "deny": ["deny.w.example.org"],
                "block_mode": "nxdomain",
            },
            "standard": {"age": "unrestricted", "log": False},
        },
        "mandated": {"sources": [{"id": "authority", "path": str(rpz), "format": "rpz"}]},
        "lists": {"dir": "lists", "catalogue_sources": False},
    }


def ask(rp: ResolverProc, name: str, source: str) -> dns.message.Message:
    query = dns.message.make_query(name, "A")
    return dns.query.udp(query, rp.host, port=rp.port, source=source, timeout=5)


def http(url: str, data: bytes | None = None) -> str:
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as resp:
        return str(resp.read().decode())


def metric_sum(text: str, name: str) -> float:
    return sum(
        s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name
    )


@pytest.fixture
def served(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> tuple[ResolverProc, str, Path, Path]:
    rpz = tmp_path / "mandated.rpz"
    rpz.write_text(RPZ.format(serial=1, more=""))
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(policy(rpz)))
    db = tmp_path / "querylog.sqlite"
    admin = free_port()
    rp = resolver_proc(
        [authority.address],
        policy=str(policy_file),
        workers=2,
        admin={"listen": [f"127.0.0.1:{admin}"]},
        querylog={"path": str(db), "flush_interval": 1},
        organisation={"name": "Trường THCS Nguyễn Du", "address": "12 Lê Lợi, Huế"},
    )
    return rp, f"http://127.0.0.1:{admin}", rpz, db


def test_every_answer_is_reported_after_the_raw_log_is_purged(
    served: tuple[ResolverProc, str, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rp, admin, rpz, db = served
    sent = {"mandated-nx": 0, "mandated-rewrite": 0}
    for _ in range(3):
        assert ask(rp, "banned.w.example.org", STANDARD).rcode() == dns.rcode.NXDOMAIN
        assert ask(rp, "banned.w.example.org", KIDS).rcode() == dns.rcode.NXDOMAIN
        sent["mandated-nx"] += 2
    for _ in range(2):
        reply = ask(rp, "redirect.w.example.org", STANDARD)  # RPZ rewrite of a mandated name
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer
        sent["mandated-rewrite"] += 1
    assert ask(rp, "deny.w.example.org", KIDS).rcode() == dns.rcode.NXDOMAIN
    assert ask(rp, "ok.w.example.org", KIDS).rcode() == dns.rcode.NOERROR
    assert ask(rp, "ok.w.example.org", STANDARD).rcode() == dns.rcode.NOERROR

    # a new version of the mandated list goes into force, then a reload that changes nothing
    rpz.write_text(RPZ.format(serial=2, more="gone.w.example.org CNAME .\n"))
    assert json.loads(http(f"{admin}/api/v1/reload", b""))["generation"] == 2
    assert ask(rp, "gone.w.example.org", STANDARD).rcode() == dns.rcode.NXDOMAIN
    sent["mandated-nx"] += 1
    assert json.loads(http(f"{admin}/api/v1/reload", b""))["generation"] == 3

    metrics = http(f"{admin}/metrics")
    wait_for(
        lambda: metric_sum(http(f"{admin}/metrics"), "safe_resolver_rollup_writes_total") >= 1,
        "roll-ups written while serving",
    )
    metrics = http(f"{admin}/metrics")  # the last word: nothing is asked after this
    answered = metric_sum(metrics, "safe_resolver_queries_total")
    mandated_hits = metric_sum(metrics, "safe_resolver_mandated_hits_total")
    assert mandated_hits == sent["mandated-nx"] + sent["mandated-rewrite"]  # rewrites count
    processes = {
        s.labels["process"]
        for f in text_string_to_metric_families(metrics)
        for s in f.samples
        if s.name == "safe_resolver_process_resident_memory_bytes" and s.value > 0
    }
    assert processes == {"supervisor", "worker-1", "worker-2"}
    assert rp.terminate() == 0

    today = datetime.now(HCM).date()
    period = ["--from", (today - timedelta(days=1)).isoformat(), "--to", today.isoformat()]
    config = ["--config", str(rp.config)]

    def report() -> dict[str, Any]:
        assert main(["report", *period, *config]) == 0
        data: dict[str, Any] = json.loads(capsys.readouterr().out)
        return data | {"generated": "-"}

    before = report()
    jsonschema.validate(before, load_schema())
    totals = before["totals"]
    assert totals["queries"] == answered  # every answer, once, from both workers
    assert totals["mandated"] == mandated_hits
    assert before["mandated"]["by_action"] == {
        "blocked": sent["mandated-nx"], "rewritten": sent["mandated-rewrite"],
    }  # fmt: skip
    profiles = {row["profile"]: row for row in before["per_profile"]}
    assert profiles["standard"]["mandated"] == 3 + 1 + sent["mandated-rewrite"]  # log: false
    with sqlite3.connect(db) as conn:
        standard = "SELECT COUNT(*) FROM queries WHERE profile = 'standard'"
        assert conn.execute(standard).fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM queries").fetchone()[0] > 0
    assert {r["domain"]: r["blocked"] for r in before["top_blocked"]} == {
        "example.org": sent["mandated-nx"] + sent["mandated-rewrite"] + 1,  # + deny.w.example.org
    }
    assert before["organisation"]["name"] == "Trường THCS Nguyễn Du"
    assert today.isoformat() not in {m["from"] for m in before["coverage"]["missing"]}

    # the audit trail: three reloads, two versions of the mandated list
    versions = before["list_versions"]
    assert [(v["source"], v["generation"], v["state"]) for v in versions] == [
        ("authority", 1, "in-force"), ("authority", 2, "in-force"),
    ]  # fmt: skip
    assert versions[0]["digest"] != versions[1]["digest"] and versions[1]["rules"] == 3
    assert before["reloads"] == {"ok": 3, "failed": 0}
    assert main(["audit", "--json", *config]) == 0
    trail = json.loads(capsys.readouterr().out)
    reloads = [(r["cause"], r["generation"]) for r in trail if r["kind"] == "reload"]
    assert reloads == [("start", 1), ("api", 2), ("api", 3)]

    assert main(["purge", "--all", *config]) == 0
    assert "removed" in capsys.readouterr().out
    assert report() == before
