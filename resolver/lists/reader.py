"""Open a list file of any supported format and compression and parse it, streaming.

Compression is recognised by magic bytes (gzip, xz, bzip2), not by the file name, because
fetched copies and operator files are often misnamed. Text is decoded as UTF-8 with
undecodable bytes replaced (the parsers count such lines as "binary-data"), and lines are
cut at `MAX_LINE + 1` characters so one enormous line never sits in memory. A truncated or
corrupt compressed stream ends the parse with a "truncated-file" / "corrupt-file" reject;
everything read before it is kept.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, islice
from pathlib import Path
from typing import BinaryIO

from resolver.lists.adblock import parse_adblock
from resolver.lists.common import MAX_LINE
from resolver.lists.detect import DETECT_LINES, detect_format
from resolver.lists.formats import (
    parse_dnsmasq,
    parse_domains,
    parse_hosts,
    parse_keywords,
    parse_unbound,
    parse_wildcard,
)
from resolver.lists.model import ParseResult, Reject
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

_GZIP, _XZ, _BZ2 = b"\x1f\x8b", b"\xfd7zXZ\x00", b"BZh"


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


def read_list(path: str | Path, fmt: str = "auto") -> ParseResult:
    """Parse the list file at `path`. Never raises for bad content or I/O trouble (those
    become rejects); raises ValueError only for an unknown format name."""
    source = LineSource(Path(path))
    result = parse_lines(source, fmt)
    if source.error:
        result.rejects.append(Reject(source.lines_read + 1, source.error, source.detail))
    return result


class LineSource:
    """Iterate the decoded, length-capped lines of a possibly compressed file.

    After iteration, `error` is "" or one of "truncated-file", "corrupt-file",
    "unreadable-file", with `detail` saying why.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.error = ""
        self.detail = ""
        self.lines_read = 0

    def __iter__(self) -> Iterator[str]:
        try:
            with self.path.open("rb") as raw:
                yield from self._lines(raw)
        except EOFError as exc:
            self.error, self.detail = "truncated-file", f"compressed data ends early: {exc}"
        except (lzma.LZMAError, gzip.BadGzipFile, zlib.error, ValueError) as exc:
            self.error, self.detail = "corrupt-file", f"cannot decompress: {exc}"
        except OSError as exc:
            self.error, self.detail = "unreadable-file", f"{exc.strerror or exc}"

    def _lines(self, raw: BinaryIO) -> Iterator[str]:
        text = io.TextIOWrapper(open_decompressed(raw), encoding="utf-8-sig", errors="replace")
        readline = text.readline
        limit = MAX_LINE + 1
        count = 0
        try:
            while line := readline(limit):
                count += 1
                if len(line) == limit and line[-1] != "\n":
                    while (rest := readline(65536)) and rest[-1] != "\n":
                        pass  # skip the remainder of an over-long line
                yield line
        finally:
            self.lines_read = count


def open_decompressed(raw: BinaryIO) -> BinaryIO:
    """Wrap a binary stream in the decompressor its magic bytes call for."""
    magic = raw.read(6)
    raw.seek(0)
    if magic.startswith(_GZIP):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if magic.startswith(_XZ):
        return lzma.LZMAFile(raw)  # type: ignore[return-value]
    if magic.startswith(_BZ2):
        return bz2.BZ2File(raw)  # type: ignore[return-value]
    return raw
