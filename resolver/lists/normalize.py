"""Domain-name normalization shared by every list parser.

A rule's name must compare equal to the name in a query, so every parser funnels names
through here: lower case, no trailing dot, IDN labels as punycode, and nothing a DNS
query could never carry. This runs over millions of lines, so already-clean ASCII names
take one compiled-regex `fullmatch`; only the rest pay for the slow checks.

IDN: the standard library's `idna` codec implements IDNA2003 (nameprep), not IDNA2008.
For Vietnamese names the two agree (lower-case letters with diacritics map the same way);
they differ on a few characters such as `ß` (IDNA2003 maps it to `ss`) and symbols
IDNA2008 forbids. A list author who needs exact IDNA2008 can write the `xn--` form, which
is kept as written.

Letters, digits, hyphen and underscore are allowed anywhere in a label: real lists carry
`_dmarc`-style labels and tumblr-style names with leading or trailing hyphens, and a
resolver must be able to block whatever a client can query.
"""

from __future__ import annotations

import ipaddress
import re

MAX_NAME = 253  # octets in presentation form without the trailing dot (RFC 1035 255 wire)
MAX_LABEL = 63

# Fast path: lower-case ASCII labels of 1..63 allowed characters, the last one not all digits
# (an all-digit last label is an IPv4 address or garbage; the slow path says which).
CLEAN_MATCH = re.compile(r"(?:[a-z0-9_-]{1,63}\.)*(?=[a-z0-9_-]*[a-z_-])[a-z0-9_-]{1,63}").fullmatch
_LABEL = re.compile(r"[a-z0-9_-]+").fullmatch


class InvalidName(ValueError):
    """A name no rule can hold; `reason` is one of the fixed reject reasons."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(f"{reason}: {text[:200]!r}")
        self.reason = reason


def is_clean(name: str) -> bool:
    """True when `name` is already normalized ASCII (the hot path of every parser)."""
    return len(name) <= MAX_NAME and CLEAN_MATCH(name) is not None


def name_or_reason(text: str) -> tuple[str, str]:
    """Normalize `text`: returns `(name, "")` or `("", reason)`; never raises.

    Parsers call this on the slow path (the fast path is `is_clean` on the lowered text),
    so a reject costs no exception.
    """
    name = text.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if is_clean(name):
        return name, ""
    if not name:
        return "", "invalid-name"
    if "\x00" in name or "\ufffd" in name:
        return "", "binary-data"
    if is_ip_literal(name):
        return "", "ip-address"
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError as exc:  # nameprep refusal, empty or over-long label
            too_long = any(len(label) > MAX_LABEL for label in name.split("."))
            reason = "label-too-long" if too_long or "too long" in str(exc) else "invalid-name"
            return "", reason
        if is_clean(name):
            return name, ""
    return "", _why_unclean(name)


def normalize_name(text: str) -> str:
    """Normalize one domain name or raise `InvalidName` (for callers outside the hot path)."""
    name, reason = name_or_reason(text)
    if reason:
        raise InvalidName(reason, text)
    return name


def _why_unclean(name: str) -> str:
    labels = name.split(".")
    for label in labels:
        if not label:
            return "invalid-name"  # empty label: `a..b`, leading dot
        if not _LABEL(label):
            return "invalid-name"
        if len(label) > MAX_LABEL:
            return "label-too-long"
    if len(name) > MAX_NAME:
        return "name-too-long"
    return "invalid-name"  # all-digit last label that is not an address


def is_ip_literal(text: str) -> bool:
    """True for an IPv4/IPv6 literal (a scope suffix such as `%lo0` allowed)."""
    if ":" not in text and not text[-1:].isdigit():
        return False
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True
