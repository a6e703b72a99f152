"""The workers benchmark's parsers and table on fixed input (the benchmark itself runs in
`make bench`, never in tests)."""

from __future__ import annotations

import struct

import pytest

from bench.dns_bench import Result
from bench.peers.process import pss_of, query
from bench.workers_bench import Churn, Row, receive_buffer_drops, table, txt_of, worker_of

SMAPS_ROLLUP = """\
55d0c0a00000-7ffc3e5f9000 ---p 00000000 00:00 0                          [rollup]
Rss:              204800 kB
Pss:              131072 kB
Pss_Anon:          65536 kB
Pss_File:          65536 kB
Shared_Clean:      73728 kB
"""


def test_pss_is_read_from_smaps_rollup() -> None:
    assert pss_of(SMAPS_ROLLUP) == 131072


def test_one_named_line_is_read_from_smaps_rollup() -> None:
    assert pss_of(SMAPS_ROLLUP, "Pss_Anon") == 65536


def test_smaps_rollup_without_pss_is_an_error() -> None:
    with pytest.raises(ValueError):
        pss_of("Rss: 1 kB\n")


def identity_reply(asked: bytes, text: str) -> bytes:
    """An id.server CH TXT answer as ours sends it: the question echoed, one TXT record."""
    header = asked[:2] + struct.pack("!HHHHH", 0x8500, 1, 1, 0, 0)
    rdata = bytes([len(text)]) + text.encode()
    record = b"\xc0\x0c" + struct.pack("!HHIH", 16, 3, 0, len(rdata)) + rdata
    return header + asked[12:] + record


def test_worker_number_from_the_identity_answer() -> None:
    asked = query("id.server", 0x1D1D, 16, 3)
    reply = identity_reply(asked, "safe-resolver worker 2")
    assert txt_of(reply, asked) == "safe-resolver worker 2"
    assert worker_of(txt_of(reply, asked)) == 2


def test_an_answer_to_another_query_or_without_records_names_no_worker() -> None:
    asked = query("id.server", 0x1D1D, 16, 3)
    other = query("id.server", 0x1111, 16, 3)
    assert txt_of(identity_reply(other, "safe-resolver worker 1"), asked) is None
    assert txt_of(asked[:2] + b"\x85\x05" + asked[4:], asked) is None  # REFUSED, no answer
    assert worker_of("safe-resolver") is None
    assert worker_of(None) is None


def result(scenario: str, qps: float, cpu_us: float) -> Result:
    return Result(scenario, "ours", qps, 0.5, None, 0.0, None, cpu_us=cpu_us)


def test_table_gives_two_workers_against_one() -> None:
    rows = [
        Row(
            1_000_000, 1, {"blocked": result("blocked", 50_000, 10.0)}, 200 * 1024, 90 * 1024, 12.0,
            {"blocked": (20_000, 12.0)},
        ),
        Row(
            1_000_000, 2, {"blocked": result("blocked", 48_000, 10.5)}, 250 * 1024, 140 * 1024, 3.0,
            {"blocked": (20_000, 12.6)},
        ),
    ]  # fmt: skip
    churns = [Churn("kill", 2, 30_000, 29_990, 120, 0.02, 40.0, 0.81, "pid 7 killed")]
    text = table(rows, churns)
    assert "| 1,000,000 | blocked | 10.0 | 10.5 | 1.05x | 50,000 | 48,000 |" in text
    assert "| 1,000,000 | blocked | 20,000 | 12.0 | 12.6 | 1.05x |" in text  # one CPU each
    assert "| 1,000,000 | 200 | 250 | 1.25x | 90 | 140 | 12.0 | 3.0 |" in text
    assert (
        "| one worker SIGKILLed | 2 | 30,000 | 29,990 | 120 | 40.0 | 0.81 | pid 7 killed |" in text
    )
    assert "| 1,000,000 | cache-hit | - | - | - | - | - |" in text  # not measured: dashes


def test_receive_buffer_drops_are_read_from_the_kernel() -> None:
    assert receive_buffer_drops() >= 0
