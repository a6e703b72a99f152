"""Property tests: any text in, entries or counted rejects out, never an exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from resolver.lists.common import REASONS
from resolver.lists.normalize import name_or_reason, normalize_name
from resolver.lists.reader import PARSERS

# Lines built from the characters list syntax is made of, plus arbitrary text.
SYNTAX = st.sampled_from(
    ["||", "^", "$", "@@", "|", "*.", "#", "!", ";", "/", "=", " ", "\t", ".", "(", ")", ":", '"']
)
WORDS = st.sampled_from(
    [
        "server",
        "local",
        "address",
        "local-zone:",
        "CNAME",
        "IN",
        "SOA",
        "$TTL",
        "$ORIGIN",
        "0.0.0.0",
        "127.0.0.1",
        "::1",
        "rpz-passthru.",
        "*.",
        "dnsrewrite=NOERROR;A;1.2.3.4",
        "example.com",
        "đá",
        "xn--",
        "localhost",
        "always_nxdomain",
        "important",
        "a" * 70,
    ]
)
LINE = st.one_of(
    st.text(max_size=80),
    st.lists(st.one_of(SYNTAX, WORDS, st.text(max_size=8)), max_size=10).map("".join),
)


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(LINE, max_size=20), fmt=st.sampled_from(sorted(PARSERS)))
def test_any_text_parses_without_exceptions(lines: list[str], fmt: str) -> None:
    result = PARSERS[fmt](lines)
    assert result.lines <= len(lines)
    for entry in result.entries:
        assert normalize_name(entry.name) == entry.name
        assert 1 <= entry.line <= len(lines)
    for reject in result.rejects:
        assert reject.reason in REASONS
        assert 1 <= reject.line <= len(lines)
        assert len(reject.text) <= 200
    for keyword in result.keywords:
        assert keyword.text.isascii() and len(keyword.text) >= 3


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_normalization_is_total_and_idempotent(text: str) -> None:
    name, reason = name_or_reason(text)
    if reason:
        assert reason in REASONS and name == ""
    else:
        assert name_or_reason(name) == (name, "")
        assert len(name) <= 253 and all(0 < len(label) <= 63 for label in name.split("."))
