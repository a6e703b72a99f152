"""Parse a list's decoded lines in any supported format (detected from the first lines when
the format is `auto`). Reading files is the build's job (`resolver.build.listfile`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import chain, islice

from resolver.lists.adblock import parse_adblock
from resolver.lists.detect import DETECT_LINES, detect_format
from resolver.lists.formats import (
    parse_dnsmasq,
    parse_domains,
    parse_hosts,
    parse_keywords,
    parse_unbound,
    parse_wildcard,
)
from resolver.lists.model import ParseResult
from resolver.lists.rpz import parse_rpz

PARSERS: dict[str, Callable[[Iterable[str]], ParseResult]] = {
    "domains": parse_domains,
    "hosts": parse_hosts,
    "adblock": parse_adblock,
    "dnsmasq": parse_dnsmasq,
    "unbound": parse_unbound,
    "wildcard": parse_wildcard,
    "rpz": parse_rpz,
    "keywords": parse_keywords,
}


def check_format(fmt: str) -> str:
    """Validate a format name (`auto` included); raises ValueError naming the choices."""
    if fmt != "auto" and fmt not in PARSERS:
        raise ValueError(f"unknown list format {fmt!r}; expected auto or one of {sorted(PARSERS)}")
    return fmt


def parse_lines(lines: Iterable[str], fmt: str = "auto") -> ParseResult:
    """Parse already-decoded lines in `fmt` (`auto`: detect from the first lines)."""
    check_format(fmt)
    iterator = iter(lines)
    if fmt == "auto":
        head = list(islice(iterator, DETECT_LINES))
        fmt = detect_format(head)
        iterator = chain(head, iterator)
    return PARSERS[fmt](iterator)
