"""Safe search through the real server: CNAME to the engine's safe front end plus its addresses.

The targets' addresses come from the test authority (documentation ranges), so every answer
proves the resolver looked the target up through its own upstream.
"""

from __future__ import annotations

import time

import dns.rcode
import pytest
from policy_e2e_support import CLIENTS, Served, addresses, ask, ede, records
from support.authority import SAFESEARCH_TARGETS, SEARCH_HOSTS, Authority
from support.resolver_proc import dig

PRIMARY = CLIENTS["primary"]  # safe search strict, YouTube strict, block_ttl 30
TEACHERS = CLIENTS["teachers"]  # safe search strict, YouTube moderate
YOUTUBE_HOSTS = ("www.youtube.com", "m.youtube.com", "youtubei.googleapis.com",
                 "youtube.googleapis.com", "www.youtube-nocookie.com")  # fmt: skip


def expect_rewrite(resp, name: str, target: str, qtype: str) -> None:
    """CNAME name -> target first, then the target's records of `qtype` from the authority."""
    assert resp.rcode() == dns.rcode.NOERROR, resp
    cname = resp.answer[0]
    assert cname.name.to_text(omit_final_dot=True).lower() == name.lower()
    assert [rd.target.to_text() for rd in cname] == [target + "."]
    rest = resp.answer[1:]
    assert rest, f"no {qtype} records for {target}: {resp}"
    assert all(r.name.to_text() == target + "." for r in rest)
    v4, v6 = SAFESEARCH_TARGETS[target]
    if qtype == "A":
        assert records(resp, "A") == [v4]
    elif qtype == "AAAA":
        assert records(resp, "AAAA") == [v6]
    else:
        assert records(resp, qtype) == ['1 . alpn="h2,h3"']


@pytest.mark.parametrize("qtype", ["A", "AAAA", "HTTPS"])
@pytest.mark.parametrize("name", ["www.google.com", "www.google.com.vn", "google.com"])
def test_google_forced_safe(served: Served, name: str, qtype: str) -> None:
    resp = ask(served.rp, name, qtype, source=PRIMARY)
    expect_rewrite(resp, name, "forcesafesearch.google.com", qtype)


@pytest.mark.parametrize("host", YOUTUBE_HOSTS)
def test_youtube_strict_and_moderate_per_profile(served: Served, host: str) -> None:
    strict = ask(served.rp, host, "A", source=PRIMARY)
    expect_rewrite(strict, host, "restrict.youtube.com", "A")
    moderate = ask(served.rp, host, "AAAA", source=TEACHERS)
    expect_rewrite(moderate, host, "restrictmoderate.youtube.com", "AAAA")
    preset = ask(served.rp, host, "A", source=CLIENTS["lower-secondary"])  # 11-14: moderate
    expect_rewrite(preset, host, "restrictmoderate.youtube.com", "A")


@pytest.mark.parametrize(
    ("host", "target"),
    [
        ("www.bing.com", "strict.bing.com"),
        ("edgeservices.bing.com", "strict.bing.com"),
        ("duckduckgo.com", "safe.duckduckgo.com"),
        ("www.duckduckgo.com", "safe.duckduckgo.com"),
        ("yandex.ru", "familysearch.yandex.ru"),
        ("www.pixabay.com", "safesearch.pixabay.com"),
        ("www.ecosia.org", "strict-safe-search.ecosia.org"),
    ],
)
def test_other_engines(served: Served, host: str, target: str) -> None:
    for qtype in ("A", "AAAA", "HTTPS"):
        expect_rewrite(ask(served.rp, host, qtype, source=PRIMARY), host, target, qtype)


@pytest.mark.parametrize("qtype", ["MX", "TXT", "SRV", "CAA"])
@pytest.mark.parametrize("name", ["www.google.com.vn", "www.youtube.com", "www.bing.com"])
def test_other_types_nodata(served: Served, authority: Authority, name: str, qtype: str) -> None:
    resp = ask(served.rp, name, qtype, source=PRIMARY, use_edns=0)
    assert resp.rcode() == dns.rcode.NOERROR
    assert resp.answer == []
    assert ede(resp) == []  # nothing was filtered: no Extended DNS Error
    assert authority.count(name) == 0  # decided locally, never forwarded


def test_question_echoed_in_client_case(served: Served) -> None:
    mixed = "WwW.GoOgLe.CoM.vN"
    for qtype in ("A", "HTTPS", "MX"):
        resp = ask(served.rp, mixed, qtype, source=PRIMARY)
        assert resp.question[0].name.to_text(omit_final_dot=True) == mixed
    resp = ask(served.rp, mixed, "A", source=PRIMARY)
    assert resp.answer[0].name.to_text(omit_final_dot=True) == mixed  # CNAME owner: same case


def test_unfiltered_profile_gets_the_real_host(served: Served) -> None:
    for host in ("www.google.com", "www.youtube.com", "www.bing.com", "duckduckgo.com"):
        resp = ask(served.rp, host, "A", source=CLIENTS["open"])
        assert records(resp, "CNAME") == []
        assert records(resp, "A") == [SEARCH_HOSTS[host]]


def test_ttl_is_the_profile_block_ttl_and_counts_down(served: Served) -> None:
    name = "www.google.de"  # asked by no other test: its rewrite is not cached yet
    first = ask(served.rp, name, "A", source=PRIMARY)
    expect_rewrite(first, name, "forcesafesearch.google.com", "A")
    assert first.answer[0].ttl == 30  # the CNAME we synthesize carries the profile's block_ttl
    assert all(0 < rrset.ttl <= 30 for rrset in first.answer)  # never longer than the CNAME
    time.sleep(1.1)
    again = ask(served.rp, name, "A", source=PRIMARY)
    assert addresses(again) == addresses(first)
    assert all(0 < rrset.ttl < 30 for rrset in again.answer)  # served from cache, aged


def test_second_query_from_cache(served: Served, authority: Authority) -> None:
    name, target = "www.google.fr", "forcesafesearch.google.com"
    first = ask(served.rp, name, "AAAA", source=PRIMARY)
    expect_rewrite(first, name, target, "AAAA")
    asked = authority.count(target, "AAAA")
    assert asked == 1
    second = ask(served.rp, name, "AAAA", source=PRIMARY)
    assert addresses(second) == addresses(first)
    assert authority.count(target, "AAAA") == asked  # not asked again
    assert authority.count(name) == 0  # the search host itself is never forwarded


def test_dig_sees_the_rewrite(served: Served) -> None:
    rp = served.rp
    out = dig(rp, "-b", PRIMARY, "www.google.com.vn", "A")
    assert "status: NOERROR" in out
    assert "CNAME\tforcesafesearch.google.com." in out
    assert SAFESEARCH_TARGETS["forcesafesearch.google.com"][0] in out
    out = dig(rp, "-b", PRIMARY, "www.google.com.vn", "TYPE65")
    assert "CNAME\tforcesafesearch.google.com." in out and "alpn=" in out
    out = dig(rp, "-b", TEACHERS, "www.youtube.com", "AAAA")
    assert "CNAME\trestrictmoderate.youtube.com." in out
    assert SAFESEARCH_TARGETS["restrictmoderate.youtube.com"][1] in out
    out = dig(rp, "-b", PRIMARY, "www.youtube.com", "MX")
    assert "status: NOERROR" in out and "ANSWER: 0" in out
