"""Unblock requests, content reports and the overlay file."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from resolver.rollup import RollupFold
from resolver.store import sqlite as sqlite_store
from resolver.store.overlay import add_entry, new_entry, read_overlay
from resolver.store.sqlite import SqliteRequestStore
from resolver.supervisor import CountedRequests


def test_unblock_requests_dedupe_cap_and_decide(tmp_path: Path, monkeypatch):
    store = SqliteRequestStore(tmp_path / "r.sqlite")
    first = store.add_unblock("adult.example", "students", "adult", "for biology class")
    assert store.add_unblock("adult.example", "students", "adult", "again") == first
    monkeypatch.setattr(sqlite_store, "MAX_PENDING_UNBLOCK", 2)
    second = store.add_unblock("casino.example", "students", "gambling", "")
    assert store.add_unblock("third.example", "students", None, "") is None  # cap reached
    assert [r["id"] for r in store.list_unblock()] == [second, first]
    assert store.set_unblock_status(first, "approved", "token")
    assert not store.set_unblock_status(first, "rejected")  # no longer pending
    assert store.get_unblock(first)["status"] == "approved"
    assert store.add_unblock("third.example", "students", None, "") is not None
    with pytest.raises(ValueError):
        store.set_unblock_status(second, "maybe")
    store.close()
    conn = sqlite3.connect(tmp_path / "r.sqlite")
    columns = [r[1] for r in conn.execute("PRAGMA table_info(unblock_requests)")]
    conn.close()
    assert not {"client", "ip", "name", "email"} & set(columns)  # no personal data kept


def test_content_reports_cap(tmp_path: Path, monkeypatch):
    store = SqliteRequestStore(tmp_path / "r.sqlite")
    monkeypatch.setattr(sqlite_store, "MAX_CONTENT_REPORTS", 2)
    assert store.add_content_report("http://bad.example/x", "scary") is not None
    assert store.add_content_report("http://bad2.example/", "") is not None
    assert store.add_content_report("http://bad3.example/", "") is None
    assert [r["url"] for r in store.list_content_reports()] == [
        "http://bad2.example/", "http://bad.example/x",
    ]  # fmt: skip
    store.close()


def test_overlay_is_yaml_one_entry_per_target_and_replaced_atomically(tmp_path: Path):
    path = tmp_path / "policy" / "overlay.yaml"
    zone = ZoneInfo("Asia/Ho_Chi_Minh")
    assert read_overlay(path, zone) == []
    first = new_entry("allow", "students", "name", "wiki.example", until=None, now=1.0,
                      note="request #1")  # fmt: skip
    assert add_entry(path, first, zone) is None
    again = new_entry("allow", "students", "name", "Wiki.Example", until=None, now=2.0)
    assert add_entry(path, again, zone) == first  # the same target: replaced, not doubled
    add_entry(path, new_entry("allow", "staff", "name", "wiki.example", until=None, now=3.0), zone)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert [(e["profile"], e["name"]) for e in data["allow"]] == [
        ("students", "Wiki.Example"), ("staff", "wiki.example"),
    ]  # fmt: skip
    assert data["allow"][0]["id"] == again.id and data["allow"][0]["created"]
    assert [p.name for p in path.parent.iterdir()] == ["overlay.yaml"]  # no temp file left
    path.write_text("allow: 3\n")
    with pytest.raises(ValueError, match="allow"):
        read_overlay(path, zone)


def test_requests_have_their_own_retention_and_their_decisions_are_counted(tmp_path: Path):
    fold = RollupFold(ZoneInfo("Asia/Ho_Chi_Minh"))
    store = CountedRequests(SqliteRequestStore(tmp_path / "r.sqlite"), fold)
    kept = store.add_unblock("a.example", "students", "adult", "")
    decided = store.add_unblock("b.example", "students", "adult", "")
    rejected = store.add_unblock("c.example", "students", "adult", "")
    assert kept and decided and rejected
    assert store.set_unblock_status(decided, "approved")
    assert store.set_unblock_status(rejected, "rejected")
    assert not store.set_unblock_status(rejected, "approved")  # already decided: not counted
    assert store.add_content_report("http://bad.example/", "note") is not None
    counts = {kind: n for (_, kind), n in fold.take().requests.items()}
    assert counts == {"unblock_approved": 1, "unblock_rejected": 1, "content_report": 1}
    now = time.time()
    assert store.expire(now - 3600, now - 3600) == 0  # all younger than the cut
    assert store.expire(now + 1, now + 1) == 3  # the two decided requests and the report
    assert [r["id"] for r in store.list_unblock()] == [kept]  # pending ones wait for an answer
    assert store.list_content_reports() == []
    store.close()
