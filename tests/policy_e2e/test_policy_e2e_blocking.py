"""Block modes, Extended DNS Errors, the mandated tier and bypass switches, through real clients."""

from __future__ import annotations

import dns.rcode
import pytest
from policy_e2e_support import (
    ALLOWED_V4,
    BLOCKPAGE,
    CLIENTS,
    EDE_CENSORED,
    EDE_FILTERED,
    MANDATED_NAME,
    Served,
    addresses,
    ask,
    ede,
    records,
)
from support.authority import Authority
from support.resolver_proc import dig

GAME = "game.w.example.org"  # on the test games list: blocked for every mode-* profile


def mode(name: str) -> str:
    return CLIENTS[f"mode-{name}"]


def test_blockpage_mode(served: Served, authority: Authority) -> None:
    rp = served.rp
    a = ask(rp, GAME, "A", source=mode("blockpage"))
    assert a.rcode() == dns.rcode.NOERROR and records(a, "A") == [BLOCKPAGE[0]]
    aaaa = ask(rp, GAME, "AAAA", source=mode("blockpage"))
    assert records(aaaa, "AAAA") == [BLOCKPAGE[1]]
    for qtype in ("MX", "TXT", "HTTPS", "SVCB"):
        other = ask(rp, GAME, qtype, source=mode("blockpage"))
        assert other.rcode() == dns.rcode.NOERROR and other.answer == [], qtype
    assert authority.count(GAME) == 0  # a blocked name never leaves the resolver


def test_nxdomain_mode(served: Served) -> None:
    for qtype in ("A", "AAAA", "MX"):
        resp = ask(served.rp, "sub." + GAME, qtype, source=mode("nxdomain"))  # subtree rule
        assert resp.rcode() == dns.rcode.NXDOMAIN and resp.answer == []


def test_null_mode(served: Served) -> None:
    assert records(ask(served.rp, GAME, "A", source=mode("null")), "A") == ["0.0.0.0"]
    assert records(ask(served.rp, GAME, "AAAA", source=mode("null")), "AAAA") == ["::"]
    resp = ask(served.rp, GAME, "TXT", source=mode("null"))
    assert resp.rcode() == dns.rcode.NOERROR and resp.answer == []


def test_refused_mode(served: Served) -> None:
    for qtype in ("A", "AAAA"):
        assert ask(served.rp, GAME, qtype, source=mode("refused")).rcode() == dns.rcode.REFUSED


def test_block_answers_have_short_ttl(served: Served) -> None:
    resp = ask(served.rp, GAME, "A", source=mode("blockpage"))
    assert resp.answer[0].ttl == 60  # block_ttl default
    resp = ask(served.rp, MANDATED_NAME, "A", source=CLIENTS["open"])
    assert resp.answer[0].ttl == 120  # mandated.block_ttl


@pytest.mark.parametrize("name", ["blockpage", "nxdomain", "null", "refused"])
def test_every_block_has_ede_filtered_naming_the_category(served: Served, name: str) -> None:
    for qtype in ("A", "AAAA", "TXT"):
        resp = ask(served.rp, GAME, qtype, source=mode(name))
        codes = ede(resp)
        assert [code for code, _ in codes] == [EDE_FILTERED], (qtype, resp)
        assert "games" in codes[0][1]


def test_no_ede_without_edns_and_on_allowed(served: Served) -> None:
    plain = ask(served.rp, GAME, "A", source=mode("blockpage"), use_edns=False)
    assert plain.edns == -1 and records(plain, "A") == [BLOCKPAGE[0]]
    allowed = ask(served.rp, GAME, "A", source=CLIENTS["open"])
    assert records(allowed, "A") == [ALLOWED_V4] and ede(allowed) == []


def test_category_blocks_per_profile(served: Served) -> None:
    """The same names, the school's five profiles: each blocks what its age preset says."""
    expected = {  # profile -> names it blocks among the four test categories
        "primary": {"social", "adult", "dating"},
        "lower-secondary": {"games", "adult", "dating"},
        "upper-secondary": {"adult", "dating"},
        "teachers": {"adult"},
        "guests": {"social", "adult", "dating"},
    }
    names = {"social": "social.w.example.org", "games": GAME, "adult": "adult.w.example.org",
             "dating": "dating.w.example.org"}  # fmt: skip
    for profile, blocked in expected.items():
        for category, name in names.items():
            resp = ask(served.rp, name, "A", source=CLIENTS[profile])
            if category in blocked:
                assert addresses(resp) != [ALLOWED_V4], (profile, name)
                assert ede(resp) and category in ede(resp)[0][1], (profile, name, ede(resp))
            else:
                assert addresses(resp) == [ALLOWED_V4], (profile, name, resp)


def test_profile_allow_beats_category(served: Served) -> None:
    rp, primary = served.rp, CLIENTS["primary"]
    assert records(ask(rp, "ok.social.w.example.org", "A", source=primary), "A") == [ALLOWED_V4]
    blocked = ask(rp, "other.social.w.example.org", "A", source=primary)
    assert records(blocked, "A") == [BLOCKPAGE[0]]


def test_mandated_beats_profile_allow(served: Served, authority: Authority) -> None:
    # "primary" lists the mandated name in its allow list: the mandated tier still wins.
    for profile in ("primary", "open", "teachers", "mode-refused", "mode-nxdomain"):
        resp = ask(served.rp, MANDATED_NAME, "A", source=CLIENTS[profile])
        assert records(resp, "A") == [BLOCKPAGE[0]], profile  # the mandated tier's block mode
        assert ede(resp) and ede(resp)[0][0] == EDE_CENSORED, (profile, ede(resp))
    resp = ask(served.rp, "x." + MANDATED_NAME, "AAAA", source=CLIENTS["primary"])
    assert records(resp, "AAAA") == [BLOCKPAGE[1]]
    assert ede(resp)[0][0] == EDE_CENSORED
    assert authority.count(MANDATED_NAME) == 0


@pytest.mark.parametrize("qtype", ["HTTPS", "SVCB"])
def test_https_svcb_blocked_too(served: Served, authority: Authority, qtype: str) -> None:
    for profile, rcode in (("mode-nxdomain", dns.rcode.NXDOMAIN),
                           ("mode-refused", dns.rcode.REFUSED),
                           ("mode-blockpage", dns.rcode.NOERROR)):  # fmt: skip
        resp = ask(served.rp, GAME, qtype, source=CLIENTS[profile])
        assert resp.rcode() == rcode and resp.answer == [], (profile, resp)
        assert ede(resp)[0][0] == EDE_FILTERED
    resp = ask(served.rp, MANDATED_NAME, qtype, source=CLIENTS["open"])
    assert resp.answer == [] and ede(resp)[0][0] == EDE_CENSORED
    assert authority.count(GAME) == 0 and authority.count(MANDATED_NAME) == 0


@pytest.mark.parametrize(
    ("name", "qtype", "rcode"),
    [
        ("use-application-dns.net", "A", dns.rcode.NXDOMAIN),
        ("use-application-dns.net", "AAAA", dns.rcode.NXDOMAIN),
        ("mask.icloud.com", "A", dns.rcode.NXDOMAIN),
        ("mask-h2.icloud.com", "AAAA", dns.rcode.NXDOMAIN),
        ("mask-canary.icloud.com", "A", dns.rcode.NXDOMAIN),
        ("_dns.resolver.arpa", "SVCB", dns.rcode.NOERROR),
        ("_dns.resolver.arpa", "A", dns.rcode.NOERROR),
    ],
)
def test_bypass_switches(
    served: Served, authority: Authority, name: str, qtype: str, rcode: int
) -> None:
    # Even the unrestricted profile: the switches protect the filter itself.
    for profile in ("open", "primary", "mode-refused"):
        resp = ask(served.rp, name, qtype, source=CLIENTS[profile])
        assert resp.rcode() == rcode and resp.answer == [], (profile, resp)
    assert authority.count(name) == 0


def test_dig_block_modes(served: Served) -> None:
    rp = served.rp
    out = dig(rp, "-b", mode("blockpage"), GAME, "A")
    assert f"IN\tA\t{BLOCKPAGE[0]}" in out and "EDE: 17 (Filtered)" in out
    out = dig(rp, "-b", mode("null"), GAME, "AAAA")
    assert "IN\tAAAA\t::" in out
    out = dig(rp, "-b", mode("nxdomain"), GAME, "A")
    assert "status: NXDOMAIN" in out
    out = dig(rp, "-b", mode("refused"), GAME, "A")
    assert "status: REFUSED" in out
    out = dig(rp, "-b", CLIENTS["primary"], MANDATED_NAME, "A")
    assert "EDE: 16 (Censored)" in out
    out = dig(rp, "use-application-dns.net", "A")
    assert "status: NXDOMAIN" in out
