"""The "suffix" backend's name table: every key name packed into one flat byte region.

Why (figures from `bench/match_bench.py`, see bench/README.md): a Python object per name costs
70-100 bytes and a dict or set probe touches three to four scattered cache lines, so at 5M names
memory latency, not bytecode, bounds the lookup rate. Here a name costs its own bytes plus a
record digit, and one lookup touches one window of the region.

Layout. The region is `count` windows of `size` bytes. A window holds entries
`digits name "\\n"`: the record id in `width` bytes >= 0x80 (7 bits each, most significant
first), then the ASCII name. Names never hold bytes >= 0x80 or "\\n", so a search for
`suffix "\\n"` can only hit an entry's name or the tail of a longer one (told apart by the byte
before the hit). Zero bytes pad a window; its last byte is 1 when entries that did not fit went
to the `spill` dict instead.

Placement. A name's window is crc32 of its *anchor* (the shortest suffix of two labels or more
that is not "hot") modulo `count`, so a name and every key below it share one window and the
walk down the labels stays in cache lines already fetched. "Hot" names, those with more than
`hot_children` child keys (`com.vn`, `co.uk`, `blogspot.com`...), and every ancestor of one,
live in the small `hot` dict with the single-label (TLD) keys; below them each name anchors
itself. The layout is deterministic (crc32, not the per-process `hash`), so a snapshot is the
region itself, read back in one pass with the GIL released. A list crafted so that thousands of
names share a crc32 only fills the spill dict (siphash), it never makes a window longer.
"""

from __future__ import annotations

import mmap
import zlib
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator
from itertools import islice

WINDOW = 256  # bytes: four cache lines
HOT_CHILDREN = 8
FILL = 0.5  # region bytes used by entries; the rest absorbs uneven windows
DIGIT = 0x80
_HUGE = 1 << 21


def new_region(size: int) -> mmap.mmap:
    """Anonymous private memory for the region; huge pages where the kernel offers them cut
    the TLB misses that dominate random probes."""
    region = mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if size >= _HUGE and hasattr(mmap, "MADV_HUGEPAGE"):
        region.madvise(mmap.MADV_HUGEPAGE)
    return region


def _width(records: int) -> int:
    width = 1
    while (1 << (7 * width)) < records:
        width += 1
    return width


def _digits(rid: int, width: int) -> bytes:
    return bytes(DIGIT | (rid >> (7 * i)) & 0x7F for i in reversed(range(width)))


def _rid(digits: bytes) -> int:
    rid = 0
    for byte in digits:
        rid = rid << 7 | byte & 0x7F
    return rid


class PackedNames:
    """Immutable name -> record id table; `make_lookup` builds the hot-path walk over it."""

    def __init__(
        self,
        region: mmap.mmap,
        *,
        count: int,
        size: int,
        width: int,
        hot: dict[bytes, int],
        spill: dict[bytes, int],
        keys: int,
    ) -> None:
        self.region = region
        self.count = count
        self.size = size
        self.width = width
        self.hot = hot
        self.spill = spill
        self.keys = keys

    # --- building -------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        ids: dict[str, int],
        records: int,
        *,
        size: int = WINDOW,
        hot_children: int = HOT_CHILDREN,
    ) -> PackedNames:
        """Pack `ids` (name -> record id, shallow names first: an anchor then lands before
        the names below it in its window, so a search meets it first)."""
        if not all(map(str.isascii, ids)):  # the layout relies on names below 0x80
            raise ValueError(f"not a normalized name: {next(n for n in ids if not n.isascii())!r}")
        width = _width(records)
        children = Counter(name[name.find(".") + 1 :] for name in ids if name.count(".") >= 2)
        hot_names = {parent for parent, n in children.items() if n > hot_children}
        for name in list(hot_names):  # ancestors of a hot name are hot too
            while name.count(".") >= 2:
                name = name[name.find(".") + 1 :]
                hot_names.add(name)
        hot = {f"{name}\n".encode(): ids[name] for name in hot_names}
        hot |= {f"{name}\n".encode(): rid for name, rid in ids.items() if "." not in name}
        placed = [name for name in ids if "." in name and name not in hot_names]
        total = sum(map(len, placed)) + (width + 1) * len(placed)
        count = max(1, int(total / (size * FILL))) | 1
        windows: list[list[bytes]] = [[] for _ in range(count)]
        crc = zlib.crc32
        digits = [_digits(rid, width) for rid in range(records)]
        for name in placed:
            q = name.encode() + b"\n"
            windows[crc(_anchor(q, hot)) % count].append(digits[ids[name]] + q)
        region = new_region(count * size)
        spill: dict[bytes, int] = {}
        room = size - 1
        for entries in windows:
            packed = b"".join(entries)
            flag = b"\0"
            if len(packed) > room:  # first come, first placed; the rest spills
                parts: list[bytes] = []
                used = 0
                for entry in entries:
                    if used + len(entry) <= room:
                        parts.append(entry)
                        used += len(entry)
                    else:
                        spill[entry[width:]] = _rid(entry[:width])
                packed, flag = b"".join(parts), b"\1"
            region.write(packed + bytes(room - len(packed)) + flag)
        return cls(region, count=count, size=size, width=width, hot=hot, spill=spill, keys=len(ids))

    # --- reading --------------------------------------------------------------------------

    def _window(self, q: bytes) -> int:
        """The start of the window of encoded name `q` ("name\\n")."""
        return zlib.crc32(_anchor(q, self.hot)) % self.count * self.size

    def locate(self, pat: bytes, start: int) -> int | None:
        """Record id of key `pat` ("name\\n") in the window at `start` or in the spill."""
        region = self.region
        end = start + self.size
        p = region.find(pat, start, end)
        while p >= 0:
            if region[p - 1] >= DIGIT:  # an entry starts here, not a longer name's tail
                return _rid(region[p - self.width : p])
            p = region.find(pat, p + 1, end)
        return self.spill.get(pat) if region[end - 1] else None

    def get(self, name: str) -> int | None:
        """Record id of key `name`, or None (slow path: explain, specials)."""
        q = name.encode() + b"\n"
        rid = self.hot.get(q)
        if rid is not None or "." not in name:
            return rid
        return self.locate(q, self._window(q))

    def __len__(self) -> int:
        return self.keys

    def make_lookup(
        self, at: list[int], below: list[int], has_tld_rules: bool
    ) -> Callable[[str], int]:
        """The hot-path walk (locals in cells beat attribute loads on `self`)."""
        region = self.region
        find = region.find
        crc = zlib.crc32
        count, size = self.count, self.size
        hot = self.hot.get
        spill = self.spill.get
        wide = self.width > 1
        locate = self.locate

        def lookup(name: str) -> int:
            q = name.encode() + b"\n"
            j = q.rfind(b".")
            if j < 0:  # a single label: only a TLD rule can match
                v = hot(q) if has_tld_rules else None
                return 0 if v is None else at[v]
            k = q.rfind(b".", 0, j)
            pat = q[k + 1 :] if k >= 0 else q
            u = hot(pat)  # the deepest known key above `pat`, if any
            if u is not None:  # many keys below: walk the hot table first
                while True:
                    if k < 0:
                        return at[u]
                    k = q.rfind(b".", 0, k)
                    pat = q[k + 1 :] if k >= 0 else q
                    v = hot(pat)
                    if v is None:
                        break
                    u = v
            elif has_tld_rules:
                u = hot(q[j + 1 :])
            s = crc(pat) % count * size
            e = s + size
            while True:
                p = find(pat, s, e)
                if p < 0:
                    v = spill(pat) if region[e - 1] else None
                else:
                    v = region[p - 1] - DIGIT
                    if v < 0 or wide:
                        v = locate(pat, s)
                if v is None:
                    return 0 if u is None else below[u]
                if k < 0:
                    return at[v]
                if not v & 1:  # no key below this one
                    return below[v]
                u = v
                k = q.rfind(b".", 0, k)
                pat = q[k + 1 :] if k >= 0 else q

        return lookup

    # --- snapshots ------------------------------------------------------------------------

    def meta(self) -> dict[str, int]:
        return {"count": self.count, "size": self.size, "width": self.width, "keys": self.keys}

    def frames(self, chunk: int) -> Iterator[tuple[int, bytes, list[int]]]:
        """(table, joined keys, record ids) chunks of the hot (0) and spill (1) dicts."""
        for table, items in enumerate((self.hot, self.spill)):
            it = iter(items.items())
            while part := list(islice(it, chunk)):
                yield table, b"".join(key for key, _ in part), [rid for _, rid in part]

    @classmethod
    def assemble(
        cls,
        meta: dict[str, int],
        frames: Iterable[tuple[int, bytes, list[int]]],
        region: mmap.mmap,
    ) -> PackedNames:
        """Rebuild from `meta`, `frames()` output and a region already read; raise ValueError
        on anything inconsistent."""
        tables: tuple[dict[bytes, int], dict[bytes, int]] = ({}, {})
        for table, joined, rids in frames:
            keys = joined.split(b"\n")
            if keys.pop() != b"" or len(keys) != len(rids):
                raise ValueError("table frame: keys and ids differ in number")
            tables[table].update(zip((key + b"\n" for key in keys), rids, strict=True))
        if len(region) < meta["count"] * meta["size"]:
            raise ValueError("region shorter than its windows")
        return cls(region, hot=tables[0], spill=tables[1], **meta)


def _anchor(q: bytes, hot: Container[bytes]) -> bytes:
    """The shortest suffix of encoded name `q` ("name\\n", two labels or more) not in `hot`."""
    j = q.rfind(b".")
    k = q.rfind(b".", 0, j)
    pat = q[k + 1 :]
    while k >= 0 and pat in hot:
        k = q.rfind(b".", 0, k)
        pat = q[k + 1 :]
    return pat
