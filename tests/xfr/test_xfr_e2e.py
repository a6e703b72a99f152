"""The mandated list pulled by zone transfer, end to end: a real Knot primary on loopback, our
resolver as a subprocess, real clients (dnspython for DNS and NOTIFY, urllib for the admin API).

Waits are deadline-based polls of what a client sees (the reload that puts a new version live
compiles in a child process at idle priority: seconds on a loaded machine).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.tsigkeyring
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from support.authority import Authority
from support.knot import KEY_NAME, SECRET, KnotPrimary, rpz_zone, write_secret
from support.resolver_proc import ResolverFactory, ResolverProc, free_port

ZONE = "rpz.test"
CLIENT = "127.0.0.2"  # the only client the access list allows: Knot (127.0.0.1) is not one
ALLOWED = "192.0.2.200"  # the test authority's answer for any *.w.example.org name
DEADLINE = 90.0  # seconds: a transfer plus a reload on a busy shared machine
Knot = Callable[..., KnotPrimary]


def policy(folder: Path, primary: str, *, max_bytes: int = 10_000_000) -> Path:
    write_secret(folder / "xfr.key")
    source = {
        "id": "authority",
        "transfer": {
            "primary": primary,
            "zone": ZONE,
            "tsig": {"name": KEY_NAME, "algorithm": "hmac-sha256", "secret_file": "xfr.key"},
        },
        "format": "rpz",
    }
    document = {
        "version": 1,
        "clients": {"default": "everyone"},
        "profiles": {"everyone": {"age": "unrestricted", "block_mode": "nxdomain"}},
        "mandated": {"block_mode": "nxdomain", "sources": [source]},
        "lists": {"dir": "lists", "catalogue_sources": False, "max_bytes": max_bytes},
    }
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def start_resolver(
    factory: ResolverFactory, authority: Authority, policy_path: Path, port: int
) -> tuple[ResolverProc, int]:
    admin = free_port()
    rp = factory(
        [authority.address],
        port=port,
        policy=str(policy_path),
        access={"allow": [f"{CLIENT}/32"]},
        admin={"listen": [f"127.0.0.1:{admin}"]},
        log_level="info",
    )
    return rp, admin


def ask(rp: ResolverProc, name: str) -> dns.message.Message:
    query = dns.message.make_query(name, "A")
    return dns.query.udp(query, rp.host, port=rp.port, timeout=3, source=CLIENT)


def blocked(rp: ResolverProc, name: str) -> bool:
    reply = ask(rp, name)
    if reply.rcode() == dns.rcode.NXDOMAIN:
        return True
    assert [r.to_text() for rrset in reply.answer for r in rrset] == [ALLOWED], reply
    return False


def wait_for(check: Callable[[], bool], what: str, rp: ResolverProc) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {DEADLINE:g} s: {what}\n{rp.output()[-4000:]}")
        time.sleep(0.2)


def status(admin: int) -> dict[str, Any]:
    """The one transfer source's status ({} in the moment after start before it is read)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/api/v1/status", timeout=5) as resp:
        transfers: list[dict[str, Any]] = json.loads(resp.read())["transfers"]
    assert len(transfers) <= 1
    return transfers[0] if transfers else {}


def metric(admin: int, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_transfer_at_start_then_update_notify_ixfr_and_bad_tsig(
    knot: Knot, resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    port = free_port()
    primary = knot({ZONE: rpz_zone(ZONE, ["old.w.example.org"])}, notify_port=port)
    rp, admin = start_resolver(resolver_proc, authority, policy(tmp_path, primary.address), port)

    # At start: an AXFR, then the reload puts the list live.
    wait_for(lambda: blocked(rp, "old.w.example.org"), "the first transfer blocks", rp)
    state = status(admin)
    assert state["serial"] == 1 and state["rules"] == 1 and state["zone"] == ZONE
    assert state["primary"] == primary.address and state["last_success"]
    assert state["last_error"] is None and state["completed"] == {"axfr": 1}
    assert not blocked(rp, "new.w.example.org")

    # An update at the primary: its NOTIFY (from 127.0.0.1, not a client) starts an IXFR.
    serial = primary.update(ZONE, add=["new.w.example.org"], remove=["old.w.example.org"])
    wait_for(lambda: blocked(rp, "new.w.example.org"), "the update blocks the new name", rp)
    wait_for(lambda: not blocked(rp, "old.w.example.org"), "the removed name is free", rp)
    state = status(admin)
    assert state["serial"] == serial and state["completed"].get("ixfr") == 1
    assert state["increments"] == 1  # served at once, before the rebuild of the index
    assert "IXFR, outgoing" in primary.output()
    assert metric(admin, "safe_resolver_transfer_completed_total", style="ixfr") == 1
    assert metric(admin, "safe_resolver_transfer_serial", source="authority") == serial
    assert metric(admin, "safe_resolver_notify_total", outcome="accepted") >= 1
    assert f"list version installed source=authority category=mandated zone={ZONE} " in (
        rp.output()
    )

    # The secret no longer matches the primary's: refused, counted, logged once, list untouched.
    write_secret(tmp_path / "xfr.key", "d3Jvbmcgc2VjcmV0IGZvciB0aGUgdHJhbnNmZXIga2V5")
    primary.update(ZONE, add=["newer.w.example.org"])
    failures = "safe_resolver_transfer_failures_total"
    wait_for(lambda: metric(admin, failures, reason="tsig") >= 1, "the bad TSIG is counted", rp)
    primary.update(ZONE, add=["newest.w.example.org"])
    wait_for(lambda: metric(admin, failures, reason="tsig") >= 2, "a NOTIFY tries again", rp)
    assert rp.output().count("reason=tsig") == 1
    assert status(admin)["serial"] == serial and "TSIG" in status(admin)["last_error"]
    assert blocked(rp, "new.w.example.org") and not blocked(rp, "newer.w.example.org")

    # The right key again: the next NOTIFY brings both changes.
    write_secret(tmp_path / "xfr.key", SECRET)
    primary.update(ZONE, add=["last.w.example.org"])
    wait_for(lambda: blocked(rp, "last.w.example.org"), "recovery after the key is fixed", rp)
    assert blocked(rp, "newer.w.example.org") and blocked(rp, "newest.w.example.org")
    assert status(admin)["last_error"] is None and "transfer recovered" in rp.output()


def test_primary_down_at_start_serves_the_stored_copy(
    knot: Knot, resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    port = free_port()
    first = knot({ZONE: rpz_zone(ZONE, ["kept.w.example.org"], serial=3)}, notify_port=port)
    policy_path = policy(tmp_path, first.address)
    rp, _ = start_resolver(resolver_proc, authority, policy_path, port)
    wait_for(lambda: blocked(rp, "kept.w.example.org"), "the first transfer", rp)
    assert rp.terminate() == 0
    first.stop()

    # Restart with the primary down: the stored copy blocks from the first answer on.
    rp, admin = start_resolver(resolver_proc, authority, policy_path, port)
    assert blocked(rp, "kept.w.example.org")
    wait_for(lambda: bool(status(admin).get("last_error")), "the failed attempt", rp)
    state = status(admin)
    assert state["serial"] == 3 and state["failures"] == {"network": 1}

    # The primary comes back (a new server, newer serial, no history for ours): its NOTIFY at
    # start brings the zone, the IXFR answered AXFR-style.
    zone = rpz_zone(ZONE, ["kept.w.example.org", "added.w.example.org"], serial=7)
    knot({ZONE: zone}, notify_port=port, port=first.port)
    wait_for(lambda: blocked(rp, "added.w.example.org"), "the primary's return", rp)
    assert status(admin)["serial"] == 7 and status(admin)["completed"] == {"axfr": 1}


def test_notify_from_a_stranger_or_for_another_zone_is_refused(
    knot: Knot, resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    port = free_port()
    primary = knot({ZONE: rpz_zone(ZONE, ["x.w.example.org"])}, notify_port=port)
    rp, admin = start_resolver(resolver_proc, authority, policy(tmp_path, primary.address), port)
    wait_for(lambda: blocked(rp, "x.w.example.org"), "the first transfer", rp)

    def notify(zone: str, source: str, **tsig: Any) -> dns.message.Message:
        message = dns.message.make_query(zone + ".", "SOA")
        message.set_opcode(dns.opcode.NOTIFY)
        message.flags |= dns.flags.AA
        if tsig:
            message.use_tsig(**tsig)
        return dns.query.udp(message, rp.host, port=rp.port, timeout=3, source=source)

    for _ in range(3):  # a client, not the primary
        assert notify(ZONE, CLIENT).rcode() == dns.rcode.REFUSED
    assert notify("other.test", "127.0.0.1").rcode() == dns.rcode.REFUSED
    assert metric(admin, "safe_resolver_notify_total", outcome="refused-source") == 3
    assert metric(admin, "safe_resolver_notify_total", outcome="refused-zone") == 1
    assert rp.output().count(f"NOTIFY refused from={CLIENT}") == 1

    # From the primary's address and signed with the zone's key: accepted, answered signed.
    keyring = dns.tsigkeyring.from_text({KEY_NAME: ("hmac-sha256", SECRET)})
    reply = notify(ZONE, "127.0.0.1", keyring=keyring, keyname=KEY_NAME)
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert reply.opcode() == dns.opcode.NOTIFY and reply.had_tsig
    # Signed with another secret: NOTAUTH (unsigned: we cannot sign with a key we do not share).
    wrong = dns.tsigkeyring.from_text({KEY_NAME: ("hmac-sha256", "d3Jvbmcgc2VjcmV0")})
    with pytest.raises(dns.exception.FormError, match="requires a TSIG"):
        notify(ZONE, "127.0.0.1", keyring=wrong, keyname=KEY_NAME)
    assert metric(admin, "safe_resolver_notify_total", outcome="tsig") == 1


def test_oversized_update_is_refused_and_the_list_kept(
    knot: Knot, resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    port = free_port()
    names = [f"n{i}.w.example.org" for i in range(20)]
    primary = knot({ZONE: rpz_zone(ZONE, names)}, notify_port=port)
    policy_path = policy(tmp_path, primary.address, max_bytes=1500)
    rp, admin = start_resolver(resolver_proc, authority, policy_path, port)
    wait_for(lambda: blocked(rp, "n0.w.example.org"), "the first transfer", rp)
    primary.update(ZONE, add=[f"more{i}.w.example.org" for i in range(60)])
    failures = "safe_resolver_transfer_failures_total"
    wait_for(lambda: metric(admin, failures, reason="oversized") == 1, "oversized refused", rp)
    assert blocked(rp, "n19.w.example.org") and not blocked(rp, "more0.w.example.org")
    assert status(admin)["rules"] == 20 and "lists.max_bytes" in status(admin)["last_error"]


def test_an_ixfr_goes_live_even_while_the_policy_cannot_be_rebuilt(
    knot: Knot, resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    """The increment path at work: the full rebuild fails (the operator broke the policy
    file), yet the authority's change is enforced; the repaired policy folds it in."""
    port = free_port()
    primary = knot({ZONE: rpz_zone(ZONE, ["one.w.example.org", "two.w.example.org"])},
                   notify_port=port)  # fmt: skip
    policy_path = policy(tmp_path, primary.address)
    rp, admin = start_resolver(resolver_proc, authority, policy_path, port)
    wait_for(lambda: blocked(rp, "one.w.example.org"), "the first transfer", rp)
    good = policy_path.read_text()
    policy_path.write_text(good.replace("age: unrestricted", "age: sometimes"))

    primary.update(ZONE, add=["three.w.example.org"], remove=["one.w.example.org"])
    wait_for(lambda: blocked(rp, "three.w.example.org"), "the increment goes live", rp)
    assert not blocked(rp, "one.w.example.org") and blocked(rp, "two.w.example.org")
    wait_for(lambda: "reload failed" in (status(admin)["last_error"] or ""), "the reload fails", rp)
    assert status(admin)["increments"] == 1

    policy_path.write_text(good)
    with urllib.request.urlopen(
        urllib.request.Request(f"http://127.0.0.1:{admin}/api/v1/reload", data=b""), timeout=60
    ) as resp:
        assert json.loads(resp.read())["ok"] is True
    assert blocked(rp, "three.w.example.org") and not blocked(rp, "one.w.example.org")
    primary.update(ZONE, add=["four.w.example.org"])  # the next one folds everything in
    wait_for(lambda: blocked(rp, "four.w.example.org"), "the next increment", rp)
    wait_for(lambda: status(admin)["last_error"] is None, "a clean rebuild", rp)
    assert blocked(rp, "three.w.example.org") and blocked(rp, "two.w.example.org")
