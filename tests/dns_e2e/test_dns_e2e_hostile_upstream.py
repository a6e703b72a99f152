"""A hostile upstream through the real server: the records that once cost a client its answer.

The resolver runs safe search for every client; the test authority answers the safe-search
target (forcesafesearch.google.com) with hand-built bytes. Whatever it sends, the client gets an
answer or a SERVFAIL that /metrics counts by reason, and the log shows no failed query handling.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import dns.edns
import dns.rcode
import dns.rdatatype
from prometheus_client.parser import text_string_to_metric_families
from support.authority import Authority, Fault, raw_record, raw_reply
from support.resolver_proc import ResolverFactory, ResolverProc, free_port

TARGET = "forcesafesearch.google.com"
POLICY = """\
version: 1
clients: {default: kids}
profiles:
  kids: {age: unrestricted, safe_search: {level: strict, youtube: strict}}
lists: {dir: lists, catalogue_sources: false}
"""
EDE_NETWORK_ERROR = 23


A_RECORD = raw_record(1, bytes([198, 51, 100, 1]))
NSEC_EMPTY_BITMAP = raw_record(47, b"\x01z" + b"\x0fforcesafesearch\x06google\x03com\x00")
A_RDLENGTH_0 = raw_record(1, b"")


def start(resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path) -> ResolverProc:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    admin = free_port()
    rp = resolver_proc(
        [authority.address], policy=str(policy), admin={"listen": [f"127.0.0.1:{admin}"]}
    )
    rp.admin = admin  # type: ignore[attr-defined]
    return rp


def dropped(rp: ResolverProc) -> dict[str, float]:
    url = f"http://127.0.0.1:{rp.admin}/metrics"  # type: ignore[attr-defined]
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "safe_resolver_dropped"
        for sample in family.samples
    }


def test_nsec_with_an_empty_type_bitmap_still_answers(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    rp = start(resolver_proc, authority, tmp_path)
    authority.set_fault(Fault(raw=raw_reply(A_RECORD, NSEC_EMPTY_BITMAP)), TARGET)
    resp = rp.query("www.google.com", "A", timeout=5)
    assert resp.rcode() == dns.rcode.NOERROR
    types = [dns.rdatatype.to_text(rrset.rdtype) for rrset in resp.answer]
    assert types == ["CNAME", "A", "NSEC"]
    assert [rd.to_text() for rd in resp.answer[1]] == ["198.51.100.1"]
    assert "query handling failed" not in rp.output()


def test_a_record_with_rdlength_0_is_a_counted_servfail(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    rp = start(resolver_proc, authority, tmp_path)
    authority.set_fault(Fault(raw=raw_reply(A_RDLENGTH_0)), TARGET)
    resp = rp.query("www.google.com", "A", timeout=5, use_edns=0)
    assert resp.rcode() == dns.rcode.SERVFAIL
    assert [o.code for o in resp.options if o.otype == dns.edns.EDE] == [EDE_NETWORK_ERROR]
    assert dropped(rp).get("upstream-bad-rdata") == 1
    # The same bytes for a name that is simply forwarded: the same counted SERVFAIL.
    authority.set_fault(Fault(raw=raw_reply(A_RDLENGTH_0)), "plain.example.org")
    assert rp.query("plain.example.org", "A", timeout=5).rcode() == dns.rcode.SERVFAIL
    assert dropped(rp).get("upstream-bad-rdata") == 2
    assert "query handling failed" not in rp.output()
