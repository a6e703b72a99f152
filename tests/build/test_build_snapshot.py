"""The build's one hand-off: a snapshot file that serving processes map and that decides every
query as the in-process compile does; content-named, checked, pruned."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from resolver.build import snapshotfile
from resolver.build.compile import build_snapshot, compile_policy
from resolver.build.snapshotfile import SnapshotFileError, map_snapshot
from resolver.match.builder import SMALL
from resolver.match.packed import PackedNames
from resolver.policy.compile import PolicyError
from resolver.policy.decide import decide

REPO = Path(__file__).resolve().parents[2]
MON_0900 = 1_764_554_400.0  # Monday 2025-12-01 09:00 in Asia/Ho_Chi_Minh (lesson hours)
MON_2300 = MON_0900 + 14 * 3600

QUERIES = [
    ("10.1.4.20", "www.facebook.com", 1),
    ("10.1.4.20", "pornhub.com", 28),
    ("10.1.4.20", "www.google.com.vn", 1),
    ("10.1.4.20", "www.google.com.vn", 16),
    ("10.9.0.5", "www.youtube.com", 1),
    ("10.99.1.1", "use-application-dns.net", 1),
    ("10.3.2.2", "_dns.resolver.arpa", 64),
    ("192.0.2.1", "example.org", 1),
    ("100.64.1.1", "banned.example.net", 1),
    ("100.64.200.1", "www.bing.com", 65),
]


def decisions(snap, when: float) -> list[tuple[str, str, str | None, str | None]]:
    out = []
    for client, name, qtype in QUERIES:
        d = decide(snap, client, name, qtype, when)
        out.append((d.action.value, d.tier.value, d.category, d.target))
    return out


@pytest.mark.parametrize("policy", ["school.yaml", "isp.yaml", "default.yaml"])
def test_the_mapped_snapshot_decides_as_the_compile_does(policy: str) -> None:
    path = REPO / "policy" / policy
    built = build_snapshot(path)
    mapped = map_snapshot(built.path, generation=7)
    fresh = compile_policy(path)
    assert mapped.generation == 7
    for when in (MON_0900, MON_2300):
        assert decisions(mapped, when) == decisions(fresh, when)
    assert mapped.list_sizes == fresh.list_sizes
    assert mapped.check_expectations() == []
    assert [p.message for p in mapped.warnings] == [p.message for p in fresh.warnings]


POLICY = """\
version: 1
clients: {default: kids}
profiles:
  kids: {age: unrestricted, block: [adult], block_mode: nxdomain, allow: [ok.blocked7.test]}
lists:
  dir: lists
  catalogue_sources: false
  sources:
    - {id: local-adult, category: adult, path: local.txt, format: domains}
"""


def big_policy(folder: Path, extra: str = "") -> Path:
    names = [f"host{n}.blocked{n % 997}.test" for n in range(SMALL + 5_000)]
    (folder / "local.txt").write_text("\n".join(names) + "\n" + extra)
    (folder / "policy.yaml").write_text(POLICY)
    return folder / "policy.yaml"


def test_a_second_build_of_the_same_lists_compiles_nothing(tmp_path: Path) -> None:
    policy = big_policy(tmp_path)
    first = build_snapshot(policy)
    second = build_snapshot(policy)
    assert first.compiled and not second.compiled
    assert first.path == second.path  # named by its content
    (tmp_path / "local.txt").write_text((tmp_path / "local.txt").read_text() + "new.test\n")
    third = build_snapshot(policy)
    assert third.compiled and third.path != first.path
    snap = map_snapshot(third.path)
    assert isinstance(snap.index.names, PackedNames)
    assert snap.index.lookup_name("www.new.test") and snap.index.lookup_name("host7.blocked7.test")


def test_the_index_region_is_mapped_from_the_cache_not_copied(tmp_path: Path) -> None:
    built = build_snapshot(big_policy(tmp_path))
    snap = map_snapshot(built.path)
    region = snap.index.names.region
    maps = Path(f"/proc/{os.getpid()}/maps").read_text()
    cache = tmp_path / "lists" / "index-cache"
    assert any(str(cache) in line and ".idx" in line for line in maps.splitlines())
    with pytest.raises(TypeError):
        region[0] = 0


def test_a_corrupt_snapshot_file_is_refused(tmp_path: Path) -> None:
    built = build_snapshot(big_policy(tmp_path))
    data = bytearray(built.path.read_bytes())
    data[-5] ^= 0xFF
    bad = built.path.with_name("bad.snap")
    bad.write_bytes(bytes(data))
    with pytest.raises(SnapshotFileError, match="checksum"):
        map_snapshot(bad)
    with pytest.raises(SnapshotFileError, match="cannot read"):
        map_snapshot(tmp_path / "absent.snap")
    index = next(built.path.parent.glob("*.idx"))
    index.write_bytes(index.read_bytes()[:-10])
    with pytest.raises(SnapshotFileError):
        map_snapshot(built.path)


def test_a_policy_whose_own_samples_fail_is_not_built(tmp_path: Path) -> None:
    policy = big_policy(tmp_path)
    policy.write_text(
        POLICY + "expect:\n  - {client: 10.0.0.1, name: host7.blocked7.test, action: allow}\n"
    )
    with pytest.raises(PolicyError, match="expectations failed"):
        build_snapshot(policy)


def test_old_snapshot_files_are_pruned_and_their_indexes_with_them(tmp_path: Path) -> None:
    policy = big_policy(tmp_path)
    folder = tmp_path / "lists" / "index-cache"
    paths = []
    for n in range(snapshotfile.KEEP + 3):
        (tmp_path / "local.txt").write_text(f"only{n}.test\n")
        paths.append(build_snapshot(policy).path)
    for age, path in enumerate(paths):  # built long ago, in this order
        if path.exists():
            os.utime(path, (1_000_000 + age, 1_000_000 + age))
    for index in folder.glob("*.idx"):
        os.utime(index, (1_000_000, 1_000_000))
    snapshotfile.prune(folder, paths[-1])
    assert sorted(folder.glob("*.snap")) == sorted(paths[-snapshotfile.KEEP :])
    live = set().union(*(snapshotfile.referenced(p) for p in folder.glob("*.snap")))
    assert {p.name for p in folder.glob("*.idx")} == live
    assert map_snapshot(paths[-1]).index.lookup_name(f"only{snapshotfile.KEEP + 2}.test")
