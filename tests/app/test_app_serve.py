"""The whole `serve` process: DNS, block page, admin API, metrics and query log working together.

One real resolver subprocess with every listener on a free loopback port, real clients (dnspython,
aiohttp's client via urllib), and the query log checked in its SQLite file after a clean stop.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import dns.edns
import dns.rcode
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.authority import Authority
from support.resolver_proc import ResolverFactory, free_port

POLICY = """\
version: 1
timezone: Asia/Ho_Chi_Minh
clients:
  default: kids
profiles:
  kids:
    age: 6-10
    block_mode: blockpage
    deny: [blocked.example.org]
overlay: overlay.yaml
"""


def http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status, resp.headers, resp.read().decode()


def test_blocked_name_block_page_admin_metrics_and_log(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    web, admin = free_port(), free_port()
    db = tmp_path / "log" / "querylog.sqlite"
    rp = resolver_proc(
        [authority.address],
        policy=str(policy),
        blockpage={"listen": [f"127.0.0.1:{web}"], "hotline": "111"},
        admin={"listen": [f"127.0.0.1:{admin}"]},
        querylog={"path": str(db), "clients": "pseudonymized", "flush_interval": 1},
    )
    # A denied name points at the block page (its listen address), with an EDE naming why.
    blocked = rp.query("blocked.example.org", "A", use_edns=0)
    assert [r.to_text() for r in blocked.answer[0]] == ["127.0.0.1"]
    ede = [o for o in blocked.options if o.otype == dns.edns.EDE]
    assert ede and ede[0].code == 17 and "deny" in ede[0].text
    # A curated adult name is blocked by category for this 6-10 profile.
    adult = rp.query("pornhub.com", "A", use_edns=0)
    assert [o.text for o in adult.options if o.otype == dns.edns.EDE] == ["category: adult"]
    allowed = rp.query("www.example.org", "A")
    assert allowed.rcode() == dns.rcode.NOERROR and allowed.answer

    # The block page, reached as the blocked site would be, explains and shows the hotline.
    status, headers, page = http(
        f"http://127.0.0.1:{web}/some/path", headers={"Host": "pornhub.com"}
    )
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert "111" in page and "pornhub.com" in page

    # The admin API sees the same resolver.
    _, _, body = http(f"http://127.0.0.1:{admin}/api/v1/status")
    status_json = json.loads(body)
    assert status_json["policy_generation"] == 1 and "kids" in status_json["profiles"]
    _, _, body = http(
        f"http://127.0.0.1:{admin}/api/v1/explain?client=127.0.0.1&name=pornhub.com&type=A"
    )
    explained = json.loads(body)
    assert explained["action"] == "block" and explained["category"] == "adult"
    assert explained["source"].endswith("adult.txt") and explained["line"] > 0
    _, _, body = http(f"http://127.0.0.1:{admin}/api/v1/reload", data=b"")
    assert json.loads(body)["ok"] is True

    # Metrics: bounded labels, counts that match what we sent.
    _, _, text = http(f"http://127.0.0.1:{admin}/metrics")
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    blocked_count = sum(
        s.value
        for s in samples
        if s.name == "safe_resolver_queries_total" and s.labels.get("action") == "blocked"
    )
    assert blocked_count >= 2
    for sample in samples:  # never a domain or a client address (upstreams are configuration)
        values = [v for k, v in sample.labels.items() if k != "upstream"]
        assert not any("pornhub" in v or "example.org" in v or "127.0.0.1" in v for v in values)
    generation = [s.value for s in samples if s.name == "safe_resolver_policy_generation"]
    assert generation == [2.0]
    updated = {
        s.labels["category"]: s.value
        for s in samples
        if s.name == "safe_resolver_list_updated_timestamp_seconds"
    }
    assert 0 < updated["adult"] <= time.time()  # list freshness for the dashboard and alerts

    # A clean stop flushes the query log; clients are pseudonymized in the file itself.
    assert rp.terminate() == 0
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT client, qname, action FROM queries").fetchall()
    assert ("pornhub.com", "blocked") in {(q, a) for _, q, a in rows}
    assert all(client and "127.0.0.1" not in client for client, _, _ in rows)


def test_bad_policy_reload_keeps_serving(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    admin = free_port()
    rp = resolver_proc(
        [authority.address], policy=str(policy), admin={"listen": [f"127.0.0.1:{admin}"]}
    )
    assert rp.query("blocked.example.org", "A").rcode() == dns.rcode.NXDOMAIN  # no block page
    policy.write_text(POLICY.replace("block_mode: blockpage", "block_mode: sometimes"))
    _, _, body = http(f"http://127.0.0.1:{admin}/api/v1/status")
    before = json.loads(body)["policy_generation"]
    try:
        http(f"http://127.0.0.1:{admin}/api/v1/reload", data=b"")
        raise AssertionError("a broken policy must not reload")
    except urllib.error.HTTPError as exc:
        assert exc.code == 422
        assert "block_mode" in json.loads(exc.read())["error"]
    _, _, body = http(f"http://127.0.0.1:{admin}/api/v1/status")
    assert json.loads(body)["policy_generation"] == before
    assert rp.query("blocked.example.org", "A").rcode() == dns.rcode.NXDOMAIN
    time.sleep(0.1)
    assert rp.proc.poll() is None


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_block_page_over_https_with_configured_certificate(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=blockpage.school.lan", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    https = free_port()
    resolver_proc(
        [authority.address],
        policy=str(policy),
        blockpage={
            "https_listen": [f"127.0.0.1:{https}"],
            "address": ["127.0.0.9"],
            "cert": str(cert),
            "key": str(key),
        },
    )
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False  # the certificate names the school's page, not 127.0.0.1
    req = urllib.request.Request(f"https://127.0.0.1:{https}/", headers={"Host": "pornhub.com"})
    with urllib.request.urlopen(req, timeout=5, context=context) as resp:
        page = resp.read().decode()
    assert "111" in page and "pornhub.com" in page
    served = ssl.get_server_certificate(("127.0.0.1", https))
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(cert.read_text())
