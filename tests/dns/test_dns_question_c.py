"""resolver/dns/_question.c against its reference, `packet.python_question_name`: any bytes
give the same name, key and dots, or the same reason they are malformed."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resolver.dns import packet
from resolver.dns.fastpath import describe
from resolver.match.key import name_key
from resolver.pure import pure_requested

question = pytest.importorskip("resolver.dns._question", reason="the C part is not built here")
HEAD = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"


def wire_name(labels: list[bytes]) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


# label bytes weighted towards what matters: case, dots, bytes >= 0x80, length-like values
LABEL = st.binary(min_size=1, max_size=70) | st.lists(
    st.sampled_from(b"aZz09-_.\x80\xc3\xff\x2e\x01A"), min_size=1, max_size=63
).map(bytes)


@settings(max_examples=2000, deadline=None)
@given(st.lists(LABEL, max_size=12), st.binary(max_size=8))
def test_names_read_alike(labels: list[bytes], tail: bytes) -> None:
    data = HEAD + wire_name(labels) + tail
    assert question.question_name(data) == packet.python_question_name(data)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_read_alike(body: bytes) -> None:
    data = HEAD + body
    assert question.question_name(data) == packet.python_question_name(data)
    assert question.question_name(bytearray(data)) == packet.python_question_name(data)


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ([b"a" * 63] * 4, "name-too-long"),  # 256 bytes on the wire
        ([b"a.b", b"example"], "dot-in-label"),
        ([b"x" * 46, b"example"], None),  # length byte 0x2E is not a dot in a label
    ],
)
def test_limits(labels: list[bytes], reason: str | None) -> None:
    data = HEAD + wire_name(labels) + struct.pack("!HH", 1, 1)
    got = question.question_name(data)
    assert got == packet.python_question_name(data)
    assert (got if isinstance(got, str) else None) == reason


def test_the_key_is_the_matching_cores() -> None:
    data = HEAD + wire_name([b"WWW", b"Example", b"COM"]) + struct.pack("!HH", 1, 1)
    name, key, end = question.question_name(data)  # type: ignore[misc]
    assert (name, key, end) == ("www.example.com", name_key("www.example.com"), len(data) - 4)


def test_compressed_and_truncated_names() -> None:
    assert question.question_name(HEAD + b"\xc0\x0c") == "compressed-question"
    assert question.question_name(HEAD + b"\x05abc") == "truncated-question"
    assert question.question_name(HEAD) == "truncated-question"


def test_read_query_uses_the_part_that_serves_and_the_datapath_says_which() -> None:
    compiled = not pure_requested()
    want = question.question_name if compiled else packet.python_question_name
    assert packet.question_name is want
    assert ("question reader: C" in describe(True, 64, 1000)) is compiled
