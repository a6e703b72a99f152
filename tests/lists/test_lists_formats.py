"""Table-driven tests of every list format: one row per tricky line, plus real samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from resolver.build.listfile import read_list
from resolver.lists.adblock import parse_adblock
from resolver.lists.common import REASONS
from resolver.lists.formats import (
    keyword_ascii,
    parse_dnsmasq,
    parse_domains,
    parse_hosts,
    parse_keywords,
    parse_unbound,
    parse_wildcard,
)
from resolver.lists.model import Entry, ParseResult
from resolver.lists.model import RuleAction as A
from resolver.lists.model import Scope as S
from resolver.lists.normalize import InvalidName, normalize_name
from resolver.lists.rpz import parse_rpz

DATA = Path(__file__).resolve().parent.parent / "data" / "lists"


def one(result: ParseResult) -> tuple[str, S, A, str | None] | str:
    """The single outcome of a one-line parse: an entry tuple, a reject reason, or ""."""
    assert len(result.entries) + len(result.rejects) <= 1, result
    if result.entries:
        e = result.entries[0]
        return (e.name, e.scope, e.action, e.target)
    return result.rejects[0].reason if result.rejects else ""


BLOCK_SUB = (S.SUBTREE, A.BLOCK, None)

NORMALIZE = [
    ("Example.COM.", "example.com"),
    ("bóng-đá.vn", "xn--bng--8na8hpj.vn"),
    ("xn--bng--8na8hpj.vn", "xn--bng--8na8hpj.vn"),
    ("_dmarc.example.com", "_dmarc.example.com"),
    ("-tumblr-.example.com", "-tumblr-.example.com"),
    ("a..b", "invalid-name"),
    (".a.b", "invalid-name"),
    ("", "invalid-name"),
    ("a" * 64 + ".com", "label-too-long"),
    (".".join(["a" * 63] * 4) + ".com", "name-too-long"),
    ("exa mple.com", "invalid-name"),
    ("bad!char.com", "invalid-name"),
    ("1.2.3.4", "ip-address"),
    ("2001:db8::1", "ip-address"),
    ("fe80::1%lo0", "ip-address"),
    ("foo.123", "invalid-name"),
    ("nul\x00.com", "binary-data"),
]


@pytest.mark.parametrize(("text", "expected"), NORMALIZE)
def test_normalize_name(text: str, expected: str) -> None:
    if expected not in REASONS:
        assert normalize_name(text) == expected
        assert normalize_name(expected) == expected  # idempotent
    else:
        with pytest.raises(InvalidName) as info:
            normalize_name(text)
        assert info.value.reason == expected


DOMAINS = [
    ("example.com", ("example.com", *BLOCK_SUB)),
    ("  Example.COM.  ", ("example.com", *BLOCK_SUB)),
    ("# comment", ""),
    ("example.com # inline", ("example.com", *BLOCK_SUB)),
    ("*.cdn.example", ("cdn.example", S.BELOW, A.BLOCK, None)),
    ("91.121.1.2", "ip-address"),
    ("0.0.0.0 example.com", "not-a-rule"),
    ("x" * 70 + ".com", "label-too-long"),
    ("tiếng-việt.vn", (normalize_name("tiếng-việt.vn"), *BLOCK_SUB)),
    ("a" * 5000, "line-too-long"),
    ("\ufffd\ufffdPNG", "binary-data"),
]


@pytest.mark.parametrize(("line", "expected"), DOMAINS)
def test_domains(line: str, expected: object) -> None:
    assert one(parse_domains([line])) == expected


HOSTS = [
    ("0.0.0.0 ads.example", ("ads.example", S.EXACT, A.BLOCK, None)),
    ("127.0.0.1\tAds.Example  # tracker", ("ads.example", S.EXACT, A.BLOCK, None)),
    ("::1 ads.example", ("ads.example", S.EXACT, A.BLOCK, None)),
    ("216.239.38.120 www.google.com", ("www.google.com", S.EXACT, A.REWRITE, "216.239.38.120")),
    ("127.0.0.1 localhost", ""),
    ("127.0.0.1 localhost.localdomain", ""),
    ("127.0.0.1 local", ""),
    ("255.255.255.255 broadcasthost", ""),
    ("::1 localhost ip6-localhost ip6-loopback", ""),
    ("fe80::1%lo0 localhost", ""),
    ("0.0.0.0 0.0.0.0", ""),
    ("ads.example", "not-a-rule"),
    ("0.0.0.0 bad..name", "invalid-name"),
]


@pytest.mark.parametrize(("line", "expected"), HOSTS)
def test_hosts(line: str, expected: object) -> None:
    assert one(parse_hosts([line])) == expected


def test_hosts_several_names_per_line() -> None:
    result = parse_hosts(["0.0.0.0 a.example b.example\tc.example # three"])
    assert [(e.name, e.scope) for e in result.entries] == [
        ("a.example", S.EXACT),
        ("b.example", S.EXACT),
        ("c.example", S.EXACT),
    ]


ADBLOCK = [
    ("||ads.example^", ("ads.example", *BLOCK_SUB)),
    ("||ads.example^$important", ("ads.example", *BLOCK_SUB)),
    ("||ads.example^|", ("ads.example", *BLOCK_SUB)),
    ("|exact.example^", ("exact.example", S.EXACT, A.BLOCK, None)),
    ("|exact.example|", ("exact.example", S.EXACT, A.BLOCK, None)),
    ("@@||good.example^", ("good.example", S.SUBTREE, A.ALLOW, None)),
    ("! comment", ""),
    ("[Adblock Plus 2.0]", ""),
    ("||ads.example^$third-party", "unsupported-modifier"),
    ("||ads.example^$script,important", "unsupported-modifier"),
    ("example.com##.banner", "cosmetic-rule"),
    ("##.ad", "cosmetic-rule"),
    ("/ads/*", "not-a-rule"),
    ("||example.com/ads/*", "path-rule"),
    ("||log-*.zadn.vn^", "wildcard-rule"),
    ("/^ad[0-9]+\\./", "regex-rule"),
    ("example.com", "not-a-rule"),
    (
        "|www.youtube.com^$dnsrewrite=NOERROR;CNAME;restrictmoderate.youtube.com",
        ("www.youtube.com", S.EXACT, A.REWRITE, "restrictmoderate.youtube.com"),
    ),
    (
        "|www.ya.ru^$dnsrewrite=NOERROR;A;213.180.193.56",
        ("www.ya.ru", S.EXACT, A.REWRITE, "213.180.193.56"),
    ),
    ("||x.example^$dnsrewrite=NXDOMAIN;;", ("x.example", S.SUBTREE, A.NXDOMAIN, None)),
    ("||x.example^$dnsrewrite=NOERROR;MX;10 mail", "unsupported-modifier"),
    ("@@||x.example^$dnsrewrite=1.2.3.4", "unsupported-modifier"),
]


@pytest.mark.parametrize(("line", "expected"), ADBLOCK)
def test_adblock(line: str, expected: object) -> None:
    assert one(parse_adblock([line])) == expected


DNSMASQ = [
    ("server=/gambling.example/", ("gambling.example", *BLOCK_SUB)),
    ("local=/ads.example/", ("ads.example", *BLOCK_SUB)),
    ("address=/doh.example/#", ("doh.example", *BLOCK_SUB)),
    ("address=/doh.example/", ("doh.example", *BLOCK_SUB)),
    ("address=/doh.example/0.0.0.0", ("doh.example", *BLOCK_SUB)),
    ("address=/r.example/10.0.0.1", ("r.example", S.SUBTREE, A.REWRITE, "10.0.0.1")),
    ("server=/corp.example/10.0.0.53", "not-a-rule"),
    ("conf-file=/etc/x", "not-a-rule"),
    ("address=/#/", "invalid-name"),
]


@pytest.mark.parametrize(("line", "expected"), DNSMASQ)
def test_dnsmasq(line: str, expected: object) -> None:
    assert one(parse_dnsmasq([line])) == expected


def test_dnsmasq_several_domains_per_line() -> None:
    result = parse_dnsmasq(["address=/a.example/b.example/#"])
    assert [e.name for e in result.entries] == ["a.example", "b.example"]


UNBOUND = [
    ('local-zone: "doh.example." always_nxdomain', ("doh.example", *BLOCK_SUB)),
    ("local-zone: doh.example static", ("doh.example", *BLOCK_SUB)),
    ('local-zone: "x.example." always_null', ("x.example", *BLOCK_SUB)),
    ('local-zone: "x.example." refuse', ("x.example", *BLOCK_SUB)),
    ('local-zone: "x.example." inform_deny', ("x.example", *BLOCK_SUB)),
    ('local-zone: "x.example." transparent', "unsupported-zone-type"),
    ('local-data: "x.example. A 10.0.0.1"', "local-data"),
    ("server:", ""),
    ("include: other.conf", "not-a-rule"),
]


@pytest.mark.parametrize(("line", "expected"), UNBOUND)
def test_unbound(line: str, expected: object) -> None:
    assert one(parse_unbound([line])) == expected


WILDCARD = [
    ("*.doh.example", ("doh.example", S.BELOW, A.BLOCK, None)),
    ("apex.example", ("apex.example", S.EXACT, A.BLOCK, None)),
    ("*.bad..example", "invalid-name"),
]


@pytest.mark.parametrize(("line", "expected"), WILDCARD)
def test_wildcard(line: str, expected: object) -> None:
    assert one(parse_wildcard([line])) == expected


def test_wildcard_apex_and_below_fold_into_subtree() -> None:
    result = parse_wildcard(["*.d.example", "d.example", "*.other.example"])
    assert [(e.name, e.scope, e.line) for e in result.entries] == [
        ("d.example", S.SUBTREE, 1),
        ("other.example", S.BELOW, 3),
    ]


RPZ_ZONE = """\
$TTL 300
$ORIGIN rpz.school.example.
@ IN SOA ns.school.example. admin.school.example. (
        2024010101 ; serial
        3600 600 86400 300 )
    IN NS localhost.
; a comment line
nx.example          CNAME .
*.nx.example        CNAME .
nodata.example 300 IN CNAME *.
ok.example          CNAME rpz-passthru.
safe.example        CNAME forcesafesearch.google.com.
ip4.example         A     216.239.38.120
ip6.example         AAAA  2001:db8::1
abs.example.rpz.school.example. CNAME .
$ORIGIN sub.example.rpz.school.example.
www                 CNAME .
32.1.0.0.127.rpz-ip CNAME .
ns.rpz-nsdname      CNAME .
rpz-public-resolver1.rrdns.pch.net.rpz.school.example. CNAME .
txt.example.rpz.school.example. TXT "why"
drop.example.rpz.school.example. CNAME rpz-drop.
outside.example.    CNAME .
"""


def test_rpz_zone() -> None:
    result = parse_rpz(RPZ_ZONE.splitlines())
    got = {(e.name, e.scope, e.action, e.target) for e in result.entries}
    assert got == {
        ("nx.example", S.SUBTREE, A.NXDOMAIN, None),
        ("nodata.example", S.EXACT, A.NODATA, None),
        ("ok.example", S.EXACT, A.ALLOW, None),
        ("safe.example", S.EXACT, A.REWRITE, "forcesafesearch.google.com"),
        ("ip4.example", S.EXACT, A.REWRITE, "216.239.38.120"),
        ("ip6.example", S.EXACT, A.REWRITE, "2001:db8::1"),
        ("abs.example", S.EXACT, A.NXDOMAIN, None),
        ("www.sub.example", S.EXACT, A.NXDOMAIN, None),
        ("rpz-public-resolver1.rrdns.pch.net", S.EXACT, A.NXDOMAIN, None),
    }
    assert result.reject_counts() == {
        "unsupported-trigger": 2,
        "unsupported-record-type": 1,
        "unsupported-rpz-action": 1,
        "out-of-zone": 1,
    }
    nx = next(e for e in result.entries if e.name == "nx.example")
    assert nx.line == 8


def test_rpz_without_origin_uses_names_as_written() -> None:
    zone = ["$TTL 3600", "@ IN SOA a. b. 1 2 3 4 5", "  IN NS localhost.", "x.example IN CNAME ."]
    assert one(parse_rpz(zone)) == ("x.example", S.EXACT, A.NXDOMAIN, None)


@pytest.mark.parametrize(
    ("text", "ascii_form"),
    [("cá độ", "cado"), ("Đánh Bạc", "danhbac"), ("casino", "casino"), ("sex-shop", "sex-shop")],
)
def test_keyword_ascii(text: str, ascii_form: str) -> None:
    assert keyword_ascii(text) == ascii_form


def test_keywords() -> None:
    result = parse_keywords(["# sensitive words", "cá độ", "casino", "CASINO", "xx", ""])
    assert [(k.text, k.line) for k in result.keywords] == [("cado", 2), ("casino", 3)]
    assert result.reject_counts() == {"duplicate": 1, "keyword-too-short": 1}


def test_duplicates_are_counted_and_first_kept() -> None:
    result = parse_domains(["a.example", "b.example", "A.example."])
    assert [e.name for e in result.entries] == ["a.example", "b.example"]
    assert result.rejects[0].line == 3 and result.rejects[0].reason == "duplicate"


def test_garbage_stops_with_too_many_rejects() -> None:
    result = parse_domains(["not a domain list"] * 20_000)
    assert result.entries == []
    counts = result.reject_counts()
    assert counts["too-many-rejects"] == 1
    assert counts["not-a-rule"] == 10_000


def test_ip_addresses_never_count_as_garbage() -> None:
    lines = [f"10.0.{i // 256}.{i % 256}" for i in range(12_000)] + ["late.example"]
    result = parse_domains(lines)
    assert [e.name for e in result.entries] == ["late.example"]
    assert result.reject_counts() == {"ip-address": 12_000}


# ------------------------------------------------------------------ real samples

SAMPLES = [
    # file, format, entries, reject counts, a name that must be present with its scope
    ("ut1-agressif.domains.txt", "domains", 20, {"ip-address": 8}, S.SUBTREE),
    ("clefspeare13-pornhosts.hosts.txt", "hosts", 11, {}, S.EXACT),
    ("hostsvn-ads.hosts.txt", "hosts", 22, {}, S.EXACT),
    ("blocklistproject-gambling.domains.txt", "domains", 17, {}, S.SUBTREE),
    ("blocklistproject-gambling.hosts.txt", "hosts", 17, {}, S.EXACT),
    ("blocklistproject-gambling.adblock.txt", "adblock", 17, {}, S.SUBTREE),
    ("blocklistproject-gambling.dnsmasq.txt", "dnsmasq", 17, {}, S.SUBTREE),
    ("hagezi-doh.adblock.txt", "adblock", 19, {}, S.SUBTREE),
    ("hostsvn-ads.adblock.txt", "adblock", 21, {"wildcard-rule": 1}, S.SUBTREE),
    ("adguardhome-safesearch.adblock.txt", "adblock", 8, {}, S.EXACT),
    ("hagezi-doh.dnsmasq.txt", "dnsmasq", 14, {}, S.SUBTREE),
    ("hostsvn-ads.dnsmasq.txt", "dnsmasq", 20, {}, S.SUBTREE),
    ("hagezi-doh.unbound.conf", "unbound", 18, {}, S.SUBTREE),
    ("hagezi-doh.wildcard.txt", "wildcard", 19, {}, S.BELOW),
    ("hagezi-doh.rpz.txt", "rpz", 9, {}, S.SUBTREE),
    ("mullvad-adult.rpz.txt", "rpz", 18, {}, S.EXACT),
]


@pytest.mark.parametrize(("name", "fmt", "count", "rejects", "scope"), SAMPLES)
def test_real_samples(name: str, fmt: str, count: int, rejects: dict, scope: S) -> None:
    result = read_list(DATA / name)
    assert result.format == fmt  # auto-detected
    assert len(result.entries) == count
    assert result.reject_counts() == rejects
    assert result.entries[0].scope is scope
    assert all(normalize_name(e.name) == e.name for e in result.entries)
    names = {e.name for e in result.entries}
    assert not names & {"localhost", "local", "broadcasthost", "localhost.localdomain"}


def test_hagezi_rpz_sample_keeps_rpz_prefixed_names() -> None:
    names = {e.name for e in read_list(DATA / "hagezi-doh.rpz.txt").entries}
    assert "rpz-public-resolver1.rrdns.pch.net" in names


def test_safesearch_rewrites_from_sample() -> None:
    entries = read_list(DATA / "adguardhome-safesearch.adblock.txt").entries
    assert Entry("m.youtube.com", S.EXACT, A.REWRITE, "restrictmoderate.youtube.com", 2) in entries
    assert any(e.target == "213.180.193.56" for e in entries)
