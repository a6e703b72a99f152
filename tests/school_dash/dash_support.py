"""A school's dashboard with real data: a policy file with comments, its real compiled snapshot,
list sources fetched for real (one good, one failing) and one served from its last good copy,
a query log with rows and synthetic daily roll-ups, and a request store with content reports.

`PolicyControl` is the web tests' in-memory control (tests/http/web_support.py) over the real
compiled policy: `reload()` compiles the file again, as the server's reload does.
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from web_support import ControlImpl, event

from resolver.build.compile import build_snapshot, compile_policy
from resolver.lists.catalogue import lists_settings
from resolver.policy.compile import PolicyError
from resolver.policy.snapshot import PolicySnapshot
from resolver.rollup import Batch, DayMark, day_start
from resolver.store.querylog import QueryLog
from resolver.store.sqlite import SqliteRequestStore
from resolver.update.progress import LineProgress
from resolver.update.runner import update_sources
from resolver.update.status import policy_sources

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
PHONE_TOKEN = "an0phone0token0123456"
GOOD_LIST = "adult-good.example\nporn-good.example\n"

# The school's policy as its admin keeps it: comments that say why, flow lists, a device.
POLICY = """\
# Truong THCS Example: pupils and teachers on separate subnets.
version: 1
timezone: Asia/Ho_Chi_Minh

clients:
  default: guests
  networks:
    10.1.0.0/16: primary        # grades 1-5
    10.9.0.0/16: teachers
    10.99.0.0/16: guests

profiles:
  primary:
    age: 6-10
    safe_search: {level: strict, youtube: strict}
    schedules: [lessons, always]
    allow: [olm.vn, hocmai.vn]          # learning sites the school approved
    block_mode: blockpage
  teachers:
    age: adult-staff
    log: false                           # staff queries are not logged
  guests:
    age: 15-17
    block: [social]
    block_mode: nxdomain

schedules:
  lessons:
    windows:
      - mon-fri 07:00-11:30
      - mon-fri 13:30-17:00
    block: [games, social]
    except:                              # public holidays: no lessons
      - 2026-09-02                       # National Day
  always:
    windows: ["00:00-24:00"]             # the whole day, every day
    block: [video]

devices:
  an-phone:                              # An's phone (class 3A)
    profile: primary
    token: @TOKEN@

mandated:
  block_mode: blockpage
  sources:
    - {id: example-mandated, path: mandated.txt, format: domains}

overlay: ../var/overlay.yaml

lists:
  dir: ../var/lists
  catalogue_sources: true
  sources:
    - {id: good-adult, category: adult, url: "@GOOD@"}
    - {id: dead-adult, category: adult, url: "@DEAD@"}
    - {id: extra-social, category: social, path: extra-social.txt}

# Checked at every reload.
expect:
  - {client: 10.1.4.20, name: www.facebook.com, action: block}
  - {client: 10.9.0.5, name: www.facebook.com, action: allow}
"""


class PolicyControl(ControlImpl):
    """The web tests' control over a real policy file: its compiled snapshot, reloaded by
    compiling the file again (a failed compile keeps the old snapshot, as the server does)."""

    def __init__(self, policy: Path, overlay: Path) -> None:
        super().__init__(overlay)
        self.policy = policy
        self.snapshot: PolicySnapshot = compile_policy(policy)
        self.reloaded = 0

    def policy_snapshot(self) -> PolicySnapshot:  # type: ignore[override]
        return self.snapshot

    def status(self) -> dict[str, Any]:
        return super().status() | {
            "policy": str(self.policy), "bundle": None, "content_reports_retention_days": 90,
            "profiles": list(self.snapshot.profiles),
        }  # fmt: skip

    async def reload(self, accept_shrink: bool = False) -> dict[str, Any]:
        try:
            self.snapshot = await asyncio.to_thread(compile_policy, self.policy)
        except PolicyError as exc:
            return {"ok": False, "generation": self.generation, "error": str(exc), "duration": 0}
        self.generation += 1
        self.reloaded += 1
        return {"ok": True, "generation": self.generation, "error": None, "duration": 0.01}


@dataclass
class Dash:
    folder: Path
    policy: Path
    control: PolicyControl
    log: QueryLog
    store: SqliteRequestStore
    now: float


def write_policy(folder: Path, base_url: str) -> Path:
    policy_dir = folder / "policy"
    policy_dir.mkdir(parents=True)
    (policy_dir / "mandated.txt").write_text("banned.example\n")
    policy = policy_dir / "school.yaml"
    text = POLICY.replace("@TOKEN@", PHONE_TOKEN).replace("@GOOD@", base_url + "good.txt")
    policy.write_text(text.replace("@DEAD@", base_url + "dead.txt"))
    return policy


async def fetch_lists(policy: Path) -> None:
    """`lists update` for real, for the two test sources only (nothing leaves the machine)."""
    sources = [
        s for s in policy_sources(policy, ("adult",)) if s.id in ("good-adult", "dead-adult")
    ]
    assert len(sources) == 2
    settings = lists_settings({"dir": "../var/lists"}, policy.parent)
    await update_sources(sources, settings, LineProgress(io.StringIO(), live=False), timeout=10)


def make_stale(policy: Path) -> None:
    """`extra-social` served once (its last good copy kept by the build), then its file gone."""
    extra = policy.with_name("extra-social.txt")
    extra.write_text("extra-social.example\n")
    build_snapshot(policy)
    extra.unlink()


def today(now: float) -> datetime:
    return datetime.fromtimestamp(now, TZ)


def write_rollups(log: QueryLog, now: float) -> dict[str, int]:
    """Seven days of roll-ups but the one two days ago (the server was off): per day, queries
    and blocked for two profiles, some mandated. Returns the week's expected totals."""
    batch = Batch()
    totals = {"queries": 0, "blocked": 0, "mandated": 0}
    for back in range(7):
        if back == 2:
            continue
        day = (today(now) - timedelta(days=back)).date()
        key = day.isoformat()
        start = day_start(day, TZ)
        batch.days[key] = DayMark(start, min(now, start + 86399), min(86399.0, now - start), TZ.key)
        allowed, social, mandated = 100 + 10 * back, 20 + back, 3
        batch.counts[(key, "primary", "", "default", "allowed")] = allowed
        batch.counts[(key, "primary", "social", "category", "blocked")] = social
        batch.counts[(key, "guests", "", "mandated", "blocked")] = mandated
        batch.top[(key, "facebook.com")] = social
        totals["queries"] += allowed + social + mandated
        totals["blocked"] += social + mandated
        totals["mandated"] += mandated
    log.reader.write_rollups(batch, "test-server")
    return totals


LOG_ROWS = [
    # seconds ago, fields
    (300, {"qname": "www.facebook.com", "action": "blocked", "category": "social",
           "tier": "category", "profile": "primary", "client": "10.1.4.20"}),
    (240, {"qname": "static.xx.facebook.com", "action": "blocked", "category": "social",
           "tier": "category", "profile": "primary", "client": "10.1.4.21"}),
    (200, {"qname": "olm.vn", "profile": "primary", "client": "10.1.4.20"}),
    (150, {"qname": "www.facebook.com", "profile": "guests", "client": "10.99.0.7",
           "action": "blocked", "category": "social", "tier": "category"}),
    (100, {"qname": "www.facebook.com", "qtype": "AAAA", "profile": "primary",
           "client": "10.1.4.20", "action": "blocked", "category": "social", "tier": "category"}),
    (60, {"qname": "vnexpress.net", "profile": "guests", "client": "10.99.0.7"}),
]  # fmt: skip


async def fill_querylog(log: QueryLog, now: float) -> None:
    for ago, fields in LOG_ROWS:
        log.submit(event(now - ago, **fields))
    deadline = time.monotonic() + 30
    while log.stats.querylog_written < len(LOG_ROWS):
        assert time.monotonic() < deadline, "the query log did not write its rows"
        await asyncio.sleep(0.02)


REPORTS = [
    ("http://bad.example/game", "bạo lực · violent"),
    ('=HYPERLINK("http://evil.example","click")', "+cmd|' /C calc'!A0"),
    ("http://scam.example/", "@SUM(1+1)"),
]
