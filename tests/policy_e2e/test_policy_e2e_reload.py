"""SIGHUP reload of the policy in the running server: edits apply, broken policies never replace a
good one, and the server keeps answering every query while reloads run.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dns.exception
import dns.rcode
from policy_e2e_support import ALLOWED_V4, ask, records, server_overrides, write_policy
from support.authority import Authority
from support.resolver_proc import ResolverFactory, ResolverProc

A_NAME, B_NAME = "flip-a.w.example.org", "flip-b.w.example.org"  # blocked by policy A / B
STAY = "stay.w.example.org"  # allowed by both
GAME = "game.w.example.org"  # on no list here: blocked by both through `deny`
RELOAD_WAIT = 10.0


def policy(*deny: str, expect_allowed: str | None = None) -> dict:
    """One profile for everybody, NXDOMAIN for its deny list."""
    doc: dict = {
        "version": 1,
        "clients": {"default": "kids"},
        "profiles": {
            "kids": {"age": "unrestricted", "deny": [*deny, GAME], "block_mode": "nxdomain"}
        },
        "lists": {"dir": "lists", "catalogue_sources": False},
        "expect": [{"client": "127.0.0.1", "name": GAME, "action": "block"}],
    }
    if expect_allowed:
        doc["expect"].append({"client": "127.0.0.1", "name": expect_allowed, "action": "allow"})
    return doc


POLICY_A, POLICY_B, POLICY_C = policy(A_NAME), policy(B_NAME), policy(A_NAME, B_NAME)
EXPECTED = {  # policy -> name -> answer
    "A": {A_NAME: "nxdomain", B_NAME: "allowed", STAY: "allowed", GAME: "nxdomain"},
    "B": {A_NAME: "allowed", B_NAME: "nxdomain", STAY: "allowed", GAME: "nxdomain"},
    "C": {A_NAME: "nxdomain", B_NAME: "nxdomain", STAY: "allowed", GAME: "nxdomain"},
}


def outcome(rp: ResolverProc, name: str, timeout: float = 2.0) -> str:
    resp = ask(rp, name, "A", timeout=timeout)
    if resp.rcode() == dns.rcode.NXDOMAIN:
        return "nxdomain"
    if resp.rcode() == dns.rcode.NOERROR and records(resp, "A") == [ALLOWED_V4]:
        return "allowed"
    return f"rcode {dns.rcode.to_text(resp.rcode())} {records(resp, 'A')}"


def serving(rp: ResolverProc) -> str | None:
    """Which policy the server answers with right now ("A", "B", "C" or None)."""
    got = {name: outcome(rp, name) for name in EXPECTED["A"]}
    return next((pid for pid, want in EXPECTED.items() if got == want), None)


def wait_for(check: Callable[[], bool], what: str, rp: ResolverProc) -> None:
    deadline = time.monotonic() + RELOAD_WAIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; server log:\n{rp.output()}")


def start(resolver_proc: ResolverFactory, authority: Authority, path: Path) -> ResolverProc:
    write_policy(path, POLICY_A)
    rp = resolver_proc([authority.address], **server_overrides(path))
    assert serving(rp) == "A"
    return rp


def hup(rp: ResolverProc) -> None:
    rp.proc.send_signal(signal.SIGHUP)


def test_sighup_applies_the_edited_policy(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    path = tmp_path / "policy.yaml"
    rp = start(resolver_proc, authority, path)
    write_policy(path, POLICY_B)
    hup(rp)
    wait_for(lambda: serving(rp) == "B", "policy B after SIGHUP", rp)
    write_policy(path, POLICY_A)
    hup(rp)
    wait_for(lambda: serving(rp) == "A", "policy A after a second SIGHUP", rp)
    assert "reload failed" not in rp.output()


def test_broken_policy_keeps_the_old_one(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    path = tmp_path / "policy.yaml"
    rp = start(resolver_proc, authority, path)
    broken = {
        "yaml syntax": "version: 1\nclients: {default: kids\nprofiles: [\n",
        "schema": "version: 1\nclients: {default: kids}\nprofiles:\n  kids: {age: 6-10, "
        "block: [no-such-category]}\n",
        "failing expect sample": None,  # policy B claiming B_NAME is allowed
    }
    for failures, (why, text) in enumerate(broken.items(), start=1):
        if text is None:
            write_policy(path, policy(B_NAME, expect_allowed=B_NAME))
        else:
            path.write_text(text)
        hup(rp)
        wait_for(lambda n=failures: rp.output().count("reload failed") >= n, f"{why} rejected", rp)
        assert rp.proc.poll() is None, f"resolver exited after a {why} reload"
        assert serving(rp) == "A", why
    log = rp.output()
    assert f"{path}:3:9: YAML syntax error" in log  # file:line:column of the mistake
    assert f"{path}:4:29: unknown category 'no-such-category'" in log
    assert "expectations failed" in log and B_NAME in log
    # And the server still reloads a good policy afterwards.
    write_policy(path, POLICY_B)
    hup(rp)
    wait_for(lambda: serving(rp) == "B", "policy B after the broken ones", rp)


def test_reload_under_load_keeps_answering(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> None:
    """2,000+ queries at 400/s while seven SIGHUPs flip the policy: none unanswered, none wrong.

    The reloads alternate A and B and end on C, which only the last reload can install (a
    reload merged into a running one runs after it), so once C answers every later answer is C.
    """
    path = tmp_path / "policy.yaml"
    rp = start(resolver_proc, authority, path)
    names = list(EXPECTED["A"])
    total, rate = 2000, 400.0  # at least this many queries, per second
    results: list[tuple[float, str, str]] = []  # (time sent, name, outcome)
    timeouts: list[tuple[float, str]] = []
    done = threading.Event()  # set one second after the final policy answers

    def load() -> None:
        begin = time.monotonic()
        i = 0
        while i < total or not done.is_set():
            delay = begin + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            name = names[i % len(names)]
            sent = time.monotonic()
            try:
                results.append((sent, name, outcome(rp, name, timeout=2.0)))
            except dns.exception.Timeout:
                timeouts.append((sent, name))
            i += 1

    worker = threading.Thread(target=load, name="dns-load", daemon=True)
    worker.start()
    try:
        time.sleep(0.8)
        first_hup = time.monotonic()
        for i in range(6):
            write_policy(path, POLICY_B if i % 2 == 0 else POLICY_A)
            hup(rp)
            time.sleep(0.35)
        write_policy(path, POLICY_C)
        hup(rp)
        wait_for(lambda: serving(rp) == "C", "the final policy C", rp)
        settled = time.monotonic()
        time.sleep(1.0)
    finally:
        done.set()
    worker.join(30)
    assert not worker.is_alive()

    sent = len(results) + len(timeouts)
    assert timeouts == [], f"{len(timeouts)} of {sent} queries got no answer"
    assert sent >= total
    before = [(n, got) for t, n, got in results if t < first_hup]
    after = [(n, got) for t, n, got in results if t > settled]
    during = [(n, got) for t, n, got in results if first_hup <= t <= settled]
    assert len(before) > 100 and len(after) > 100 and during
    assert [(n, g) for n, g in before if EXPECTED["A"][n] != g] == []
    assert [(n, g) for n, g in after if EXPECTED["C"][n] != g] == []
    # In between, every answer is one of the policies' answers (never an error).
    assert [(n, g) for n, g in during if g not in {p[n] for p in EXPECTED.values()}] == []
    assert "reload failed" not in rp.output()
