"""`safe-resolver explain` and `check`, run as an admin would on the policy the server serves,
agree with what the server answers over DNS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import pytest
from policy_e2e_support import (
    BLOCKPAGE,
    CLIENTS,
    EDE_CENSORED,
    EDE_FILTERED,
    MANDATED_NAME,
    Served,
    ask,
    cli,
    ede,
    explain,
    records,
)

CASES = [  # (profile, name, qtype)
    ("primary", "www.facebook.com", "A"),  # core social list
    ("primary", "social.w.example.org", "AAAA"),  # test social list
    ("primary", "ok.social.w.example.org", "A"),  # primary's allow list
    ("primary", MANDATED_NAME, "A"),  # mandated beats allow
    ("primary", "www.google.com.vn", "HTTPS"),
    ("primary", "www.youtube.com", "A"),
    ("primary", "www.youtube.com", "MX"),
    ("teachers", "m.youtube.com", "AAAA"),
    ("teachers", "www.pornhub.com", "A"),
    ("teachers", "dating.w.example.org", "A"),
    ("lower-secondary", "www.roblox.com", "AAAA"),
    ("guests", "social.w.example.org", "A"),
    ("mode-null", "game.w.example.org", "A"),
    ("mode-refused", "game.w.example.org", "A"),
    ("open", "dns.google", "A"),  # doh category (bypass.block_doh) for every profile
    ("open", "use-application-dns.net", "A"),
    ("open", "_dns.resolver.arpa", "SVCB"),
    ("open", "www.bing.com", "A"),
]


def expected_rcode(js: dict[str, Any]) -> int:
    action, mode = js["action"], js["block_mode"]
    if action == "nxdomain" or (action == "block" and mode == "nxdomain"):
        return dns.rcode.NXDOMAIN
    if action == "refused" or (action == "block" and mode == "refused"):
        return dns.rcode.REFUSED
    return dns.rcode.NOERROR


def check_agrees(js: dict[str, Any], resp: dns.message.Message, qtype: str) -> None:
    assert resp.rcode() == expected_rcode(js)
    action = js["action"]
    codes = ede(resp)
    if action == "allow":
        assert codes == [] and records(resp, "CNAME") == []
        assert records(resp, qtype), "an allowed name gets the authority's answer"
    elif action == "rewrite":
        assert records(resp, "CNAME") == [js["target"] + "."]
        assert resp.answer[0].ttl == js["ttl"]
    elif action == "nodata":
        assert resp.answer == []
    elif action == "block":
        want_code = EDE_CENSORED if js["tier"] == "mandated" else EDE_FILTERED
        assert [c for c, _ in codes] == [want_code]
        if js["category"] and js["tier"] != "mandated":
            assert js["category"] in codes[0][1]
        fixed = {("blockpage", "A"): BLOCKPAGE[0], ("blockpage", "AAAA"): BLOCKPAGE[1],
                 ("null", "A"): "0.0.0.0", ("null", "AAAA"): "::"}  # fmt: skip
        address = fixed.get((js["block_mode"], qtype))
        if address is not None:
            assert records(resp, qtype) == [address]
            assert resp.answer[0].ttl == js["ttl"]
        else:
            assert resp.answer == []


@pytest.mark.parametrize(("profile", "name", "qtype"), CASES)
def test_explain_matches_the_dns_answer(
    served: Served, profile: str, name: str, qtype: str
) -> None:
    client = CLIENTS[profile]
    js = explain(served.policy, client, name, qtype)
    assert js["profile"] == profile
    resp = ask(served.rp, name, qtype, source=client)
    check_agrees(js, resp, qtype)


def test_explain_names_the_list_and_line(served: Served) -> None:
    js = explain(served.policy, CLIENTS["primary"], "www.facebook.com")
    assert js["source"].endswith("blocklists/core/social.txt") and js["line"] > 0
    assert js["rule"] == "facebook.com"
    lines = Path(js["source"]).read_text(encoding="utf-8").splitlines()
    assert lines[js["line"] - 1].strip() == "facebook.com"
    js = explain(served.policy, CLIENTS["guests"], "x.social.w.example.org")
    assert js["source"] == str(served.policy.parent / "social.txt") and js["line"] == 2


def test_check_accepts_the_served_policy(served: Served) -> None:
    out = cli("check", "--json", str(served.policy))
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] is True and report["expect_failures"] == []
    assert set(report["profiles"]) == set(CLIENTS)
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    assert errors == []
    # The allow of a mandated name is reported as unreachable, as the server indeed ignores it.
    assert any("unreachable" in p["message"] for p in report["problems"])
    resp = ask(served.rp, MANDATED_NAME, "A", source=CLIENTS["primary"])
    assert records(resp, "A") == [BLOCKPAGE[0]]
