"""A list file that goes missing never empties its category: the build serves its last good
copy and says so loudly; a list that never served is a plain warning; `check` says it too."""

from __future__ import annotations

import json
from pathlib import Path

from resolver.build.compile import build_snapshot, compile_policy
from resolver.build.listfile import rule_line
from resolver.build.snapshotfile import map_snapshot
from resolver.cli import main

POLICY = """\
version: 1
clients: {default: kids}
profiles:
  kids: {age: unrestricted, block: [adult], block_mode: nxdomain}
mandated:
  sources:
    - {id: authority, path: mandated.rpz, format: rpz}
lists:
  dir: lists
  catalogue_sources: false
  sources:
    - {id: local-adult, category: adult, path: adult.txt, format: domains}
"""
RPZ = "$TTL 300\n@ SOA localhost. root.localhost. 1 3600 600 86400 60\n@ NS localhost.\n"


def setup(folder: Path) -> Path:
    (folder / "policy.yaml").write_text(POLICY)
    (folder / "adult.txt").write_text("adult-one.test\nadult-two.test\n")
    (folder / "mandated.rpz").write_text(RPZ + "banned.test CNAME .\n*.banned.test CNAME .\n")
    return folder / "policy.yaml"


def test_a_missing_list_that_served_keeps_its_last_good_copy(tmp_path: Path) -> None:
    policy = setup(tmp_path)
    build_snapshot(policy)
    (tmp_path / "mandated.rpz").unlink()
    (tmp_path / "adult.txt").unlink()
    built = build_snapshot(policy)
    snap = map_snapshot(built.path)
    assert snap.mandated is not None and snap.mandated.lookup_name("www.banned.test")
    assert snap.index.lookup_name("adult-two.test")
    assert snap.list_sizes["mandated"] == 1
    loud = [str(p) for p in built.warnings if "LIST MISSING" in p.message]
    assert len(loud) == 2 and any("'authority' (mandated)" in line for line in loud)
    assert all("serving its last good copy (" in line for line in loud)
    stale = {s["id"]: s["stale"] for s in snap.sources}
    assert stale["local-adult"] and stale["authority"] and not stale["core-adult"]
    # Back again: the file itself serves, and it is no longer stale.
    (tmp_path / "adult.txt").write_text("adult-three.test\n")
    snap = map_snapshot(build_snapshot(policy).path)
    assert snap.index.lookup_name("adult-three.test")
    assert not snap.index.lookup_name("adult-one.test")
    assert {s["id"]: s["stale"] for s in snap.sources}["local-adult"] is False


def test_an_unreadable_list_is_missing_too(tmp_path: Path) -> None:
    policy = setup(tmp_path)
    build_snapshot(policy)
    (tmp_path / "adult.txt").unlink()
    (tmp_path / "adult.txt").mkdir()  # there, but not a file that can be read
    snap = map_snapshot(build_snapshot(policy).path)
    assert snap.index.lookup_name("adult-one.test")


def test_a_list_that_never_served_is_a_plain_warning(tmp_path: Path) -> None:
    policy = setup(tmp_path)
    (tmp_path / "mandated.rpz").unlink()
    snap = compile_policy(policy)
    assert snap.mandated is None
    messages = [p.message for p in snap.warnings]
    assert any("1 lists not fetched yet (authority)" in m for m in messages)
    assert not any("LIST MISSING" in m for m in messages)


def test_check_says_so_loudly(tmp_path: Path, capsys) -> None:
    policy = setup(tmp_path)
    build_snapshot(policy)
    (tmp_path / "mandated.rpz").unlink()
    assert main(["check", str(policy)]) == 0
    out = capsys.readouterr().out
    assert "LIST MISSING: 'authority' (mandated)" in out
    assert main(["check", "--json", str(policy)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["list_sizes"]["mandated"] == 1
    assert any("LIST MISSING" in p["message"] for p in report["problems"])


def test_rule_line_finds_the_rule_in_every_format(tmp_path: Path) -> None:
    cases = {
        "hosts": ("# c\n0.0.0.0 other.example.com\n0.0.0.0 Example.COM\n", 3),
        "adblock": ("! c\n||sub.example.com^\n||example.com^\n", 3),
        "wildcard": ("*.notexample.com\n*.example.com\n", 2),
        "rpz": ("$TTL 1\n; example.com here is a comment\nexample.com CNAME .\n", 3),
        "dnsmasq": ("server=/example.com.au/\nserver=/example.com/\n", 2),
        "fqdn": ("x.org\nexample.com.\n", 2),
        "absent": ("example.community\nmyexample.com\n", None),
    }
    for name, (text, line) in cases.items():
        path = tmp_path / f"{name}.txt"
        path.write_text(text)
        assert rule_line(path, "example.com") == line, name
    assert rule_line(tmp_path / "missing.txt", "example.com") is None


def test_rule_line_of_a_million_line_list(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    with path.open("w") as out:
        for n in range(1_000_000):
            out.write(f"host{n}.example{n % 97}.vn\n")
        out.write("last-rule.test\n")
    assert rule_line(path, "last-rule.test") == 1_000_001
    assert rule_line(path, "host999999.example26.vn") == 1_000_000
