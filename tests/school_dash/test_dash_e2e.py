"""The dashboard on the real server: `safe-resolver serve` (two workers) answers real queries;
its admin listener serves every page and script, finds the queries in the log search and the
day's history, shows the profile and the lists, keeps the content-reports inbox, and the policy
editor's save and undo go through the supervisor's real reload: a name denied in the form is
refused by the DNS workers, and answered again after the undo."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import dns.rcode
import pytest
from support.authority import Authority
from support.resolver_proc import ResolverFactory, ResolverProc, free_port
from support.waiting import wait_for

from resolver.http.dashboard import PAGES, SCRIPTS
from resolver.store.sqlite import SqliteRequestStore

POLICY = """\
# The e2e school: everyone on loopback is a pupil.
version: 1
timezone: Asia/Ho_Chi_Minh
clients:
  default: kids            # every client
profiles:
  kids:
    age: unrestricted
    deny: [deny.w.example.org]    # never
    block_mode: nxdomain
lists:
  dir: lists
  catalogue_sources: false
"""


def http(url: str, body: Any = None) -> tuple[int, str, str]:
    """(status, content type, text) of a GET, or of a JSON POST when `body` is given."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def api(url: str, body: Any = None, status: int = 200) -> Any:
    got, _, text = http(url, body)
    assert got == status, (url, text)
    return json.loads(text)


@pytest.fixture
def served(
    resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path
) -> tuple[ResolverProc, str, Path, Path]:
    policy = tmp_path / "policy" / "school.yaml"
    policy.parent.mkdir()
    policy.write_text(POLICY)
    db = tmp_path / "var" / "querylog.sqlite"
    admin = free_port()
    rp = resolver_proc(
        [authority.address],
        policy=str(policy),
        workers=2,
        admin={"listen": [f"127.0.0.1:{admin}"]},
        querylog={"path": str(db), "flush_interval": 1},
    )
    return rp, f"http://127.0.0.1:{admin}", policy, db


def rcode(rp: ResolverProc, name: str) -> int:
    return int(rp.query(name, timeout=5).rcode())


def test_the_dashboard_on_the_real_server(served: tuple[ResolverProc, str, Path, Path]) -> None:
    rp, admin, policy, db = served
    assert rcode(rp, "ok.w.example.org") == dns.rcode.NOERROR
    assert rcode(rp, "deny.w.example.org") == dns.rcode.NXDOMAIN

    # Every page is HTML with the navigation; every script is served.
    for path, label, *_ in PAGES:
        status, ctype, text = http(admin + path)
        assert status == 200 and ctype.startswith("text/html"), path
        assert 'aria-current="page"' in text and label in text and 'href="/devices"' in text
    assert http(admin + "/dashboard/profiles/kids")[0] == 200
    for name in SCRIPTS:
        status, ctype, _ = http(f"{admin}/static/{name}")
        assert status == 200 and ctype.startswith("text/javascript"), name

    # The log search finds the queries the workers answered, clients pseudonymized.
    def denied() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = api(f"{admin}/api/v1/querylog?qname=deny.w.example.org")[
            "rows"
        ]
        return rows

    (row,) = wait_for(denied, "the denied query in the log search")
    assert row["action"] == "blocked" and row["profile"] == "kids"
    assert re.fullmatch("[0-9a-f]{16}", row["client"])
    blocked = api(f"{admin}/api/v1/querylog?action=blocked&profile=kids")["rows"]
    assert [r["qname"] for r in blocked] == ["deny.w.example.org"]

    # Today's history from the roll-ups the server wrote while serving.
    def today() -> dict[str, Any] | None:
        day: dict[str, Any] = api(f"{admin}/api/v1/history?period=day")
        return day if day["per_day"][0]["covered"] and day["totals"]["queries"] >= 2 else None

    day = wait_for(today, "today's roll-up in the history")
    assert day["totals"]["blocked"] >= 1 and day["per_profile"][0]["profile"] == "kids"

    kids = api(f"{admin}/api/v1/profiles/kids")
    assert kids["deny"] == ["deny.w.example.org"] and kids["default"]
    assert kids["block_mode"] == "nxdomain"
    assert isinstance(api(f"{admin}/api/v1/lists")["lists"], list)

    # The inbox: a report in the server's request store, listed, exported, deleted.
    store = SqliteRequestStore(db)
    try:
        store.add_content_report("http://bad.example/", "=1+1")
    finally:
        store.close()
    inbox = api(f"{admin}/api/v1/content-reports")
    assert inbox["total"] == 1 and inbox["retention_days"] == 365
    status, ctype, text = http(f"{admin}/api/v1/content-reports.csv")
    assert status == 200 and ctype.startswith("text/csv") and "'=1+1" in text
    deleted = api(f"{admin}/api/v1/content-reports/delete", {"ids": [inbox["reports"][0]["id"]]})
    assert deleted["deleted"] == 1 and api(f"{admin}/api/v1/content-reports")["total"] == 0

    # The editor: a bad edit is refused with check's message, nothing saved.
    original = policy.read_text()
    loaded = api(f"{admin}/api/v1/policy")
    assert loaded["editable"] and loaded["file"] == str(policy)
    bad = {"profiles": {"kids": {"deny": ["deny.w.example.org", "not a name!"]}}}
    refused = api(f"{admin}/api/v1/policy", {"base": loaded["sha256"], "edits": bad}, 422)
    line = POLICY.splitlines().index("    deny: [deny.w.example.org]    # never") + 1
    (error,) = refused["problems"]
    assert (error["file"], error["line"], error["severity"]) == (str(policy), line, "error")
    assert "not a name!" in error["message"]
    assert policy.read_text() == original

    # A good edit is saved, keeps the comments, and the workers enforce it after the reload.
    assert rcode(rp, "later.w.example.org") == dns.rcode.NOERROR
    good = {"profiles": {"kids": {"deny": ["deny.w.example.org", "later.w.example.org"]}}}
    samples = [{"client": "127.0.0.1", "name": "later.w.example.org"}]
    saved = api(f"{admin}/api/v1/policy", {"base": loaded["sha256"], "edits": good,
                                          "samples": samples})  # fmt: skip
    assert saved["saved"] and saved["reload"]["ok"], saved
    assert saved["explain"][0]["action"] == "block"
    assert "# never" in policy.read_text() and "# every client" in policy.read_text()
    assert rcode(rp, "later.w.example.org") == dns.rcode.NXDOMAIN

    # Undo puts the file back and reloads: the name is answered again.
    undone = api(f"{admin}/api/v1/policy/undo", {"base": saved["sha256"]})
    assert undone["reload"]["ok"] and policy.read_text() == original
    assert rcode(rp, "later.w.example.org") == dns.rcode.NOERROR
    assert api(f"{admin}/api/v1/policy")["versions"] == []
