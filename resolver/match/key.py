"""A query name in the form the matching core walks: `(key, dots)`.

`key` is the lower-case name as bytes with "\\n" appended (the packed table's entry terminator)
and every byte >= 0x80 replaced by 0x01; `dots` is -1 followed by the offset of each "." in
`key`, in order. So the suffix below the i-th dot is `key[dots[i] + 1 :]`, one slice.

Why: a lookup walks a name's suffixes right to left, and finding each dot with `rfind` plus
encoding the name was a sizable share of a blocked lookup (figures in bench/README.md). The DNS
packet reader walks the labels anyway, so it records the dots as it turns label lengths into
dots (`resolver.dns.packet`); `name_key` builds the same from a str
for the slow paths (explain, the admin API, tests). Rules are ASCII (IDNs are punycode), so a
byte >= 0x80 can never be part of a match, while in the packed region it would look like a
record digit: mapping it to 0x01, which no rule holds, keeps such a label a plain miss.
"""

from __future__ import annotations

from typing import Final

NameKey = tuple[bytes, list[int]]

NON_ASCII: Final = bytes(range(128)) + b"\x01" * 128  # a bytes.translate table


def name_key(name: str) -> NameKey:
    """The `(key, dots)` of `name` (lower-case, no trailing dot; "" for the root)."""
    key = f"{name}\n".encode("utf-8", "replace")
    if not key.isascii():
        key = key.translate(NON_ASCII)
    dots = [-1]
    i = key.find(b".")
    while i >= 0:
        dots.append(i)
        i = key.find(b".", i + 1)
    return key, dots
