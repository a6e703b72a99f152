"""The test policy the policy end-to-end tests serve, and small helpers to ask and read answers.

Profiles are reached from 127.0.0.0/8 source addresses (all loopback on Linux), one per profile,
mirroring the school plan: 127.0.1.1 is "primary" as 10.1.0.0/16 is, 127.0.9.1 "teachers" as
10.9.0.0/16 is, and so on. Test names live under `w.example.org`, which the test authority
answers for any label (A 192.0.2.200): "allowed" shows as that address, "blocked" as anything else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dns.edns
import dns.message
import dns.query
import dns.rdatatype
import yaml
from support.resolver_proc import REPO, ResolverProc

ALLOWED_V4 = "192.0.2.200"  # what the authority answers for *.w.example.org
BLOCKPAGE = ("127.0.0.9", "::9")
TZ = "Asia/Ho_Chi_Minh"
EDE_OPTION = 15  # RFC 8914 option code
EDE_CENSORED, EDE_FILTERED = 16, 17

# source address -> profile (the loopback stand-ins for the school plan and the block modes)
CLIENTS = {
    "primary": "127.0.1.1",
    "lower-secondary": "127.0.2.1",
    "upper-secondary": "127.0.3.1",
    "teachers": "127.0.9.1",
    "guests": "127.0.99.1",
    "mode-blockpage": "127.0.100.1",
    "mode-nxdomain": "127.0.100.2",
    "mode-null": "127.0.100.3",
    "mode-refused": "127.0.100.4",
    "open": "127.0.200.1",
    "sched-now": "127.0.50.1",
    "sched-other-day": "127.0.50.2",
    "sched-holiday": "127.0.50.3",
    "sched-paris": "127.0.50.4",
    "sched-utc-hours": "127.0.50.5",
}
FORWARDER = "127.0.0.53"  # trusted to send EDNS Client Subnet
UNTRUSTED = "127.0.0.54"  # not trusted: its ECS must be ignored (it gets the default profile)

# name -> category list it is on (files written by `write_lists`)
LIST_NAMES = {
    "social": ["social.w.example.org"],
    "games": ["game.w.example.org"],
    "adult": ["adult.w.example.org"],
    "dating": ["dating.w.example.org"],
}
MANDATED_NAME = "banned.w.example.org"


@dataclass
class Served:
    """A running resolver and the policy file it serves (the `served` fixture)."""

    rp: ResolverProc
    policy: Path


def write_lists(folder: Path) -> dict[str, Path]:
    """The category lists and the mandated list the test policy names (beside it)."""
    paths = {}
    for category, names in LIST_NAMES.items():
        path = folder / f"{category}.txt"
        path.write_text(f"# test list: {category}\n" + "\n".join(names) + "\n")
        paths[category] = path
    mandated = folder / "mandated.txt"
    mandated.write_text(MANDATED_NAME + "\n")
    paths["mandated"] = mandated
    return paths


def window(start: datetime, minutes: int, days: str = "") -> str:
    """A schedule window `[DAYS ]HH:MM-HH:MM` starting at `start` (may run past midnight)."""
    end = start + timedelta(minutes=minutes)
    text = f"{start:%H:%M}-{end:%H:%M}"
    return f"{days} {text}" if days else text


def day_name(when: datetime) -> str:
    return ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[when.weekday()]


def schedules_around_now(now: datetime | None = None) -> dict[str, Any]:
    """Schedules blocking `games`: one active now, others not (other day, holiday, time zone).

    Windows run from 90 minutes before now to 90 minutes after, so a test run never leaves them.
    """
    local = (now or datetime.now(ZoneInfo(TZ))).astimezone(ZoneInfo(TZ))
    start = local - timedelta(minutes=90)
    paris = local.astimezone(ZoneInfo("Europe/Paris")) - timedelta(minutes=90)
    utc = local.astimezone(ZoneInfo("UTC")) - timedelta(minutes=90)
    other_day = day_name(start + timedelta(days=2))
    return {
        "now": {"windows": [window(start, 180, day_name(start))], "block": ["games"]},
        "other-day": {"windows": [window(start, 180, other_day)], "block": ["games"]},
        "holiday": {
            "windows": [window(start, 180)],
            "block": ["games"],
            "except": [start.date().isoformat()],
        },
        # The same instant written in Paris time, with the schedule's own zone: active.
        "paris": {"windows": [window(paris, 180)], "block": ["games"], "timezone": "Europe/Paris"},
        # UTC wall-clock hours read in the policy's zone (UTC+7): seven hours off, inactive.
        "utc-hours": {"windows": [window(utc, 180)], "block": ["games"]},
    }


def school_policy(lists: dict[str, Path], **over: Any) -> dict[str, Any]:
    """The test policy: the school plan (10.x for ECS, 127.0.x for direct clients) and more."""
    networks = {
        "10.1.0.0/16": "primary",
        "10.2.0.0/16": "lower-secondary",
        "10.3.0.0/16": "upper-secondary",
        "10.9.0.0/16": "teachers",
        "10.99.0.0/16": "guests",
    }
    networks.update({f"{ip}/32": pid for pid, ip in CLIENTS.items()})
    profiles: dict[str, Any] = {
        "primary": {
            "age": "6-10",
            "safe_search": {"level": "strict", "youtube": "strict"},
            "allow": [MANDATED_NAME, "=ok.social.w.example.org"],
            "block_ttl": 30,
        },
        "lower-secondary": {"age": "11-14", "block": ["games"]},
        "upper-secondary": {"age": "15-17", "under16": True},
        "teachers": {
            "age": "adult-staff",
            "safe_search": {"level": "strict", "youtube": "moderate"},
        },
        "guests": {"age": "15-17", "block": ["social"], "block_mode": "nxdomain"},
        "open": {"age": "unrestricted", "safe_search": "off"},
    }
    for mode in ("blockpage", "nxdomain", "null", "refused"):
        profiles[f"mode-{mode}"] = {"age": "unrestricted", "block": ["games"], "block_mode": mode}
    for name in ("now", "other-day", "holiday", "paris", "utc-hours"):
        profiles[f"sched-{name}"] = {"age": "unrestricted", "schedules": [name]}
    policy: dict[str, Any] = {
        "version": 1,
        "timezone": TZ,
        "clients": {
            "default": "guests",
            "networks": networks,
            "trusted_forwarders": [f"{FORWARDER}/32"],
        },
        "profiles": profiles,
        "schedules": schedules_around_now(),
        "mandated": {
            "block_mode": "blockpage",
            "block_ttl": 120,
            "sources": [{"id": "gov", "path": str(lists["mandated"]), "format": "domains"}],
        },
        "lists": {
            "dir": "lists",
            "catalogue_sources": False,
            "sources": [
                {"id": f"test-{cat}", "category": cat, "path": str(lists[cat]), "format": "domains"}
                for cat in LIST_NAMES
            ],
        },
        "expect": [
            {"client": CLIENTS["primary"], "name": "www.google.com.vn", "action": "rewrite"},
            {"client": "10.1.2.3", "name": "social.w.example.org", "action": "block"},
            {"client": CLIENTS["teachers"], "name": MANDATED_NAME, "action": "block"},
        ],
    }
    policy.update(over)
    return policy


def write_policy(path: Path, policy: dict[str, Any]) -> Path:
    """Write atomically (a reload must never read half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(policy, sort_keys=False))
    os.replace(tmp, path)
    return path


def server_overrides(policy: Path) -> dict[str, Any]:
    """Config sections for `ResolverFactory`: the policy, the block-page address, no HTTP."""
    return {
        "policy": str(policy),
        "blockpage": {"address": list(BLOCKPAGE)},
        "admin": {"listen": []},
    }


def ask(
    rp: ResolverProc,
    name: str,
    rdtype: str = "A",
    *,
    source: str = "127.0.0.1",
    tcp: bool = False,
    timeout: float = 3.0,
    **make_query: Any,
) -> dns.message.Message:
    """A dnspython query to `rp` from the loopback address `source` (EDNS on by default)."""
    make_query.setdefault("use_edns", 0)
    q = dns.message.make_query(name, rdtype, **make_query)
    if tcp:
        return dns.query.tcp(q, rp.host, port=rp.port, timeout=timeout, source=source)
    return dns.query.udp(q, rp.host, port=rp.port, timeout=timeout, source=source)


def ecs(subnet: str) -> dns.edns.ECSOption:
    address, prefix = subnet.split("/")
    return dns.edns.ECSOption(address, int(prefix))


def ede(resp: dns.message.Message) -> list[tuple[int, str]]:
    """Extended DNS Errors in the answer: [(info-code, text)]."""
    return [
        (opt.code, opt.text or "")
        for opt in resp.options
        if opt.otype == EDE_OPTION and isinstance(opt, dns.edns.EDEOption)
    ]


def records(resp: dns.message.Message, rdtype: str) -> list[str]:
    """Rdata texts of one type in the answer section, in order."""
    want = dns.rdatatype.from_text(rdtype)
    return [rd.to_text() for rrset in resp.answer if rrset.rdtype == want for rd in rrset]


def addresses(resp: dns.message.Message) -> list[str]:
    return records(resp, "A") + records(resp, "AAAA")


def cli(*args: str) -> subprocess.CompletedProcess:
    """`safe-resolver ARGS` as an admin runs it (the module entry point, same interpreter)."""
    return subprocess.run(
        [sys.executable, "-m", "resolver", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def explain(policy: Path, client: str, name: str, qtype: str = "A") -> dict[str, Any]:
    out = cli("explain", "--policy", str(policy), "--client", client, "--type", qtype, "--json",
              name)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)
