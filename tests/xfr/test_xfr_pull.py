"""One pull (`resolver.transfer.pull`) against a real Knot primary, and against primaries that
misbehave on purpose: whatever goes wrong, the last good copy stays exactly as it was."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.name
import dns.rdata
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import pytest
from support.knot import KEY_NAME, SECRET, KnotPrimary, rpz_zone, write_secret

from resolver.build.listfile import read_list
from resolver.lists.catalogue import TransferSpec, TsigKey
from resolver.transfer.pull import Job, pull
from resolver.transfer.xfr import _tsig_clock
from resolver.transfer.zone import CompactZone
from resolver.update.meta import read_meta

ZONE = "rpz.test"
Knot = Callable[..., KnotPrimary]


def job(
    tmp_path: Path,
    port: int,
    *,
    secret: str | None = SECRET,
    max_bytes: int = 10_000_000,
    max_records: int = 1_000_000,
) -> Job:
    """The job the manager would hand the transfer process; `secret=None`: no TSIG."""
    key = None
    if secret is not None:
        secret_file = write_secret(tmp_path / "xfr.key", secret)
        key = TsigKey(KEY_NAME, "hmac-sha256", secret_file)
    spec = TransferSpec("127.0.0.1", port, ZONE, key, max_records)
    return Job("authority", spec, tmp_path / "lists" / "authority.rpz", max_bytes, 0.5)


def names(count: int, prefix: str = "bad") -> list[str]:
    return [f"{prefix}{i}.example" for i in range(count)]


def test_axfr_then_ixfr_and_up_to_date(knot: Knot, tmp_path: Path) -> None:
    primary = knot({ZONE: rpz_zone(ZONE, names(50))})
    first = pull(job(tmp_path, primary.port))
    assert first["status"] == "updated" and first["style"] == "axfr"
    assert first["increment"] is None  # a full transfer: the full rebuild brings it
    assert first["serial"] == 1 and first["rules"] == 50
    copy = tmp_path / "lists" / "authority.rpz"
    meta = read_meta(copy)
    assert meta["serial"] == 1 and meta["rules"] == 50 and meta["primary"] == primary.address
    # The copy is an RPZ file like any other list file.
    assert len(read_list(copy, "rpz").entries) == 50

    primary.update(ZONE, add=["fresh.example", "*.fresh.example"], remove=["bad0.example"])
    second = pull(job(tmp_path, primary.port))
    assert second["status"] == "updated" and second["style"] == "ixfr"
    assert second["rules"] == 50  # one removed, one added (apex and below fold into one rule)
    # What changed, for the server to serve at once (counted from the changed names alone).
    assert second["increment"] == {
        "removed": ["bad0.example", "fresh.example"],
        "added": [["fresh.example", "subtree", "nxdomain", None]],
    }
    entries = {e.name for e in read_list(copy, "rpz").entries}
    assert "fresh.example" in entries and "bad0.example" not in entries
    assert len(entries) == second["rules"]
    assert "IXFR, outgoing" in primary.output()

    third = pull(job(tmp_path, primary.port))
    assert third["status"] == "unchanged" and third["style"] == "up-to-date"


def test_an_ixfr_removing_an_exception_leaves_it_to_the_full_rebuild(
    knot: Knot, tmp_path: Path
) -> None:
    primary = knot({ZONE: rpz_zone(ZONE, names(5))})
    primary.update(ZONE, add=["ok.bad1.example"], rdata="rpz-passthru.")
    assert pull(job(tmp_path, primary.port))["rules"] == 6
    primary.update(ZONE, remove=["ok.bad1.example"], add=["new.example"])
    outcome = pull(job(tmp_path, primary.port))
    assert outcome["style"] == "ixfr" and outcome["rules"] == 6 and outcome["increment"] is None


def test_bad_tsig_is_refused_and_the_copy_kept(knot: Knot, tmp_path: Path) -> None:
    primary = knot({ZONE: rpz_zone(ZONE, names(5))})
    assert pull(job(tmp_path, primary.port))["status"] == "updated"
    copy = tmp_path / "lists" / "authority.rpz"
    before = copy.read_bytes()
    primary.update(ZONE, add=["new.example"])
    wrong = "d3Jvbmcgc2VjcmV0IGZvciB0aGUgdHJhbnNmZXIga2V5"
    outcome = pull(job(tmp_path, primary.port, secret=wrong))
    assert outcome["status"] == "failed" and outcome["reason"] == "tsig"
    unsigned = pull(job(tmp_path, primary.port, secret=None))
    assert unsigned["status"] == "failed" and unsigned["reason"] == "tsig"  # Knot: NOTAUTH
    assert copy.read_bytes() == before
    broken = pull(job(tmp_path, primary.port, secret="not base64 at all!"))
    assert broken["status"] == "failed" and broken["reason"] == "config"


def test_oversized_zone_is_refused(knot: Knot, tmp_path: Path) -> None:
    primary = knot({ZONE: rpz_zone(ZONE, names(300))})
    by_bytes = pull(job(tmp_path, primary.port, max_bytes=4000))
    assert by_bytes["status"] == "failed" and by_bytes["reason"] == "oversized"
    by_records = pull(job(tmp_path, primary.port, max_records=100))
    assert by_records["status"] == "failed" and by_records["reason"] == "oversized"
    assert not (tmp_path / "lists" / "authority.rpz").exists()
    # An IXFR is small; the zone it would make is measured too.
    assert pull(job(tmp_path, primary.port, max_records=400))["status"] == "updated"
    primary.update(ZONE, add=names(150, "more"))
    grown = pull(job(tmp_path, primary.port, max_records=400))
    assert grown["status"] == "failed" and grown["reason"] == "oversized"
    assert read_meta(tmp_path / "lists" / "authority.rpz")["rules"] == 300


def test_empty_zone_and_drastic_shrink_never_replace_the_copy(knot: Knot, tmp_path: Path) -> None:
    full = knot({ZONE: rpz_zone(ZONE, names(100))})
    assert pull(job(tmp_path, full.port))["rules"] == 100
    full.stop()
    copy = tmp_path / "lists" / "authority.rpz"
    before = copy.read_bytes()
    # Another primary with newer serials: one nearly empty, one holding no rule at all.
    shrunk = knot({ZONE: rpz_zone(ZONE, names(10), serial=5)})
    outcome = pull(job(tmp_path, shrunk.port))
    assert outcome["status"] == "failed" and outcome["reason"] == "shrink"
    assert "100 to 10 rules" in outcome["error"]
    shrunk.stop()
    empty = knot({ZONE: rpz_zone(ZONE, [], serial=6)})
    outcome = pull(job(tmp_path, empty.port))
    assert outcome["status"] == "failed" and outcome["reason"] == "empty"
    assert copy.read_bytes() == before


def test_a_serial_going_backwards_is_refused(knot: Knot, tmp_path: Path) -> None:
    newer = knot({ZONE: rpz_zone(ZONE, names(5), serial=10)})
    assert pull(job(tmp_path, newer.port))["serial"] == 10
    newer.stop()
    older = knot({ZONE: rpz_zone(ZONE, names(5, "old"), serial=4)})
    outcome = pull(job(tmp_path, older.port))
    assert outcome["status"] == "failed" and outcome["reason"] == "serial"
    assert read_meta(tmp_path / "lists" / "authority.rpz")["serial"] == 10


@pytest.fixture
def cut_off_primary() -> Iterator[int]:
    """A primary that starts an AXFR (SOA and two rules) and hangs up before the closing SOA."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                (length,) = struct.unpack("!H", conn.recv(2))
                query = dns.message.from_wire(conn.recv(length))
                reply = dns.message.make_response(query)
                reply.answer.append(
                    dns.rrset.from_text(
                        f"{ZONE}.", 60, "IN", "SOA", "localhost. h.localhost. 9 3600 60 86400 60"
                    )
                )
                for name in ("a.example", "b.example"):
                    reply.answer.append(
                        dns.rrset.from_text(f"{name}.{ZONE}.", 60, "IN", "CNAME", ".")
                    )
                wire = reply.to_wire()
                conn.sendall(struct.pack("!H", len(wire)) + wire)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    server.close()
    thread.join(5)


def test_truncated_transfer_is_refused(cut_off_primary: int, tmp_path: Path) -> None:
    outcome = pull(job(tmp_path, cut_off_primary, secret=None))
    assert outcome["status"] == "failed" and outcome["reason"] == "truncated"
    assert not (tmp_path / "lists").exists()


def test_primary_down(tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    outcome = pull(job(tmp_path, port, secret=None))
    assert outcome["status"] == "failed" and outcome["reason"] == "network"


def test_compact_zone_round_trip(tmp_path: Path) -> None:
    """The stored copy reads back into the same zone (what an IXFR after a restart starts from)."""
    zone = CompactZone("rpz.test.")
    with zone.writer(True) as txn:
        txn.add(dns.name.empty, 60, dns.rdata.from_text("IN", "SOA", "ns. h. 7 3600 60 86400 60"))
        txn.add(dns.name.from_text("a.example", None), 60, dns.rdata.from_text("IN", "CNAME", "."))
        txn.add(dns.name.from_text("b", None), 60, dns.rdata.from_text("IN", "A", "192.0.2.1"))
        txn.add(dns.name.from_text("b", None), 60, dns.rdata.from_text("IN", "A", "192.0.2.2"))
    path = tmp_path / "z.rpz"
    path.write_text("".join(zone.lines()))
    again = CompactZone.load(path, "rpz.test.")
    assert again is not None and again.owners == zone.owners
    soa = again.soa()
    assert soa is not None and soa.serial == 7
    assert CompactZone.load(path, "other.test.") is None
    entries = {(e.name, e.target) for e in read_list(path, "rpz").entries}
    assert ("a.example", None) in entries and ("b", "192.0.2.1") in entries


def test_tsig_time_is_checked_at_arrival() -> None:
    """A big zone is parsed long after it arrived: its signatures' time is checked against
    the arrival (RFC 8945 5.2.3), not against the moment dnspython gets to them."""
    keys = dns.tsigkeyring.from_text({KEY_NAME: ("hmac-sha256", SECRET)})
    query = dns.message.make_query(f"{ZONE}.", "SOA")
    query.use_tsig(keys, KEY_NAME)
    query.to_wire()
    reply = dns.message.make_response(query)
    long_ago = time.time() - 3600
    with _tsig_clock(long_ago):
        wire = reply.to_wire()  # signed an hour ago
    with pytest.raises(dns.tsig.BadTime):
        dns.message.from_wire(wire, keyring=keys, request_mac=query.mac)
    with _tsig_clock(long_ago + 5):  # arrived 5 s after it was signed
        assert dns.message.from_wire(wire, keyring=keys, request_mac=query.mac).had_tsig
