"""The "suffix" backend's name table: every key name packed into one flat byte region.

Why (figures from `bench/match_bench.py`, see bench/README.md): a Python object per name costs
70-100 bytes and a dict or set probe touches three to four scattered cache lines, so at 5M names
memory latency, not bytecode, bounds the lookup rate. Here a name costs its own bytes plus a
record digit, and one lookup touches the first cache lines of one window of the region.

Layout. The region is `count` windows of `size` bytes (at most 256). A window starts with a
header byte: 1 + the bytes its entries use, or `full` (min(size, 255)) when entries that did not
fit went to the `spill` dict. Entries follow as `digits name "\\n"`: the record id in bytes
>= 0x80, then the ASCII name. Names never hold bytes >= 0x80 or "\\n", so a search for
`suffix "\\n"` can only hit an entry's name or the tail of a longer one (told apart by the byte
before the hit). A search reads only the header's span, so a miss touches only the cache lines
holding entries.

Digits, read backwards from the name. With at most 128 records an id is one byte, 0x80 | id.
Otherwise ids below 64 keep that one byte (0x80-0xBF) and the rest take `width` bytes: 7 bits
each in 0x80 | bits, most significant first, then a last byte 0xC0 | the low 6 bits, which
says "more digits before me". The index numbers its records most used first, so with thousands
of records (a policy of many lists) nearly every name still costs one digit byte, and a lookup
one byte read.

Placement. A name's window is crc32 of its *anchor* (the shortest suffix of two labels or more
that is not "hot") modulo `count`, so a name and every key below it share one window, placed
after it (names arrive shallow first), and the walk down the labels resumes where the last hit
was. "Hot" names, those with more than `hot_children` child keys (`com.vn`, `co.uk`,
`blogspot.com`...), and every ancestor of one, anchor on themselves and point at a record with
the HOT flag (if the walk goes below them at all): below them each name anchors itself. So the
walk learns hotness from the hit itself, with no side table to probe. Single-label (TLD) keys
live in the small `tld` dict. The layout is deterministic (crc32, not the per-process `hash`),
so the index file holds the region itself, which serving processes map read-only. A list crafted
so that thousands of names share a crc32 only fills the spill dicts (siphash), it never makes a
window longer. The spill is SPILL_SHARDS dicts picked by window, so loading a snapshot never
grows one dict of hundreds of thousands of names: the resize would hold the GIL for
milliseconds in one C call.

The walk (`make_lookup`) runs in C where resolver/match/_packed.c is built (setup.py): at 1M
names it does 2-3x the closure's lookups/s, and a first-seen blocked answer costs about 10 %
less CPU (`bench.ab`, `blocked-once`). The closure, `python_lookup`, is its reference and
fallback.
"""

from __future__ import annotations

import mmap
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice

from resolver.match.key import name_key
from resolver.pure import pure_requested, serves_compiled

WINDOW = 256  # bytes: four cache lines; the header byte caps it at 256
HOT_CHILDREN = 8
FILL = 0.5  # region bytes used by entries; the rest absorbs uneven windows
DIGIT = 0x80
SHORT = 64  # ids below this take one digit byte even where others take `width`
LONG = 0xC0  # the last digit byte of a long id: bits 6-7 set
SPILL_SHARDS = 17  # the spill of the window at byte s is shard s % 17
DEEP = 1  # record flag: a key below this name answers differently (the walk goes on)
HOT = 2  # record flag: the names below this one anchor on themselves (asked for here)
_HUGE = 1 << 21
_DIGITS = bytes(range(DIGIT, 256))


def walk_compiled() -> bool:
    """Whether lookups walk the index in C here (`make_lookup`)."""
    return serves_compiled("resolver.match._packed")


def new_region(size: int) -> mmap.mmap:
    """Memory for a region of `size` bytes while building: anonymous private memory, with huge
    pages where the kernel offers them. Serving processes map the region from its file."""
    region = mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if size >= _HUGE and hasattr(mmap, "MADV_HUGEPAGE"):
        region.madvise(mmap.MADV_HUGEPAGE)
    return region


def _width(records: int) -> int:
    """Digit bytes of the longest id: 7 bits each, less the 1 bit that marks the long form."""
    if records <= 1 << 7:
        return 1
    width = 2
    while 1 << (7 * width - 1) < records:
        width += 1
    return width


def _digits(rid: int, width: int) -> bytes:
    if width == 1 or rid < SHORT:
        return bytes((DIGIT | rid,))
    high = rid >> 6
    return bytes(
        [*(DIGIT | high >> 7 * i & 0x7F for i in reversed(range(width - 1))), LONG | rid & 63]
    )


def _rid(data: bytes | mmap.mmap, p: int, width: int) -> int:
    """The record id whose digits end just before position `p` of `data`."""
    rid = data[p - 1] - DIGIT
    if width == 1 or rid < SHORT:
        return rid
    rid &= 63
    for i in range(width - 1):
        rid |= (data[p - 2 - i] - DIGIT) << (6 + 7 * i)
    return rid


class PackedNames:
    """Immutable name -> record id table; `make_lookup` builds the hot-path walk over it (in C
    where built, `resolver/match/_packed.c`, with `python_lookup` its reference)."""

    def __init__(
        self,
        region: mmap.mmap,
        *,
        count: int,
        size: int,
        width: int,
        tld: dict[bytes, int],
        spill: list[dict[bytes, int]],
        keys: int,
    ) -> None:
        if not 8 <= size <= 256:
            raise ValueError(f"window size must be 8..256 bytes (one header byte), got {size}")
        self.region = region
        self.count = count
        self.size = size
        self.full = min(size, 255)  # header value of a window whose entries spilled
        self.width = width
        self.tld = tld
        self.spill = spill
        self.keys = keys

    # --- building -------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        ids: dict[str, int],
        hot_id: Callable[[int], int],
        *,
        size: int = WINDOW,
        hot_children: int = HOT_CHILDREN,
        fill: float = FILL,
    ) -> PackedNames:
        """Pack `ids` (name -> record id; shallow names first, so a name lands after its
        ancestors in their shared window). `hot_id(rid)` gives the id a hot name of record
        `rid` takes: that record with the HOT flag, where the walk goes below it."""
        if not all(map(str.isascii, ids)):  # the layout relies on names below 0x80
            raise ValueError(f"not a normalized name: {next(n for n in ids if not n.isascii())!r}")
        children = Counter(name[name.find(".") + 1 :] for name in ids if name.count(".") >= 2)
        hot = {parent for parent, n in children.items() if n > hot_children}
        for name in list(hot):  # ancestors of a hot name are hot too
            while name.count(".") >= 2:
                name = name[name.find(".") + 1 :]
                hot.add(name)
        hot_keys = {f"{name}\n".encode() for name in hot}
        hot_ids = {name: hot_id(ids[name]) for name in hot}
        used = set(ids.values()) | set(hot_ids.values())
        width = _width(max(used, default=0) + 1)
        tld = {f"{name}\n".encode(): rid for name, rid in ids.items() if "." not in name}
        digits = {rid: _digits(rid, width) for rid in used}
        uses = Counter(ids.values())
        total = sum(map(len, ids)) + len(ids) - sum(map(len, tld))  # "name\n" of placed names
        total += sum(len(digits[rid]) * n for rid, n in uses.items())
        count = max(1, int(total / (size * fill))) | 1
        windows: list[list[bytes]] = [[] for _ in range(count)]
        crc = zlib.crc32
        for name, rid in ids.items():
            if "." not in name:
                continue  # in `tld`
            q = name.encode() + b"\n"
            if name in hot:
                windows[crc(q) % count].append(digits[hot_ids[name]] + q)
                continue
            windows[crc(_anchor(q, hot_keys)) % count].append(digits[rid] + q)
        region = new_region(count * size)
        spill: list[dict[bytes, int]] = [{} for _ in range(SPILL_SHARDS)]
        table = cls(
            region, count=count, size=size, width=width, tld=tld, spill=spill, keys=len(ids)
        )
        for entries in windows:
            table._write(entries)
        return table

    def _write(self, entries: list[bytes]) -> None:
        """Append one window: header, entries (first come, first placed; the rest spills)."""
        packed = b"".join(entries)
        spill = self.spill[self.region.tell() % SPILL_SHARDS]
        if len(packed) <= self.full - 2:
            head = 1 + len(packed)
        else:
            parts: list[bytes] = []
            used = 0
            for entry in entries:
                if used + len(entry) <= self.full - 1:
                    parts.append(entry)
                    used += len(entry)
                else:
                    name = entry.lstrip(_DIGITS)
                    spill[name] = _rid(entry, len(entry) - len(name), self.width)
            packed, head = b"".join(parts), self.full
        self.region.write(bytes((head,)) + packed + bytes(self.size - 1 - len(packed)))

    # --- reading --------------------------------------------------------------------------

    def _locate(self, pat: bytes, p: int, s: int, e: int, h: int) -> tuple[int, int | None]:
        """(position, record id) of key `pat` ("name\\n") in the window at `s` (entries up to
        `e`, header `h`), starting from candidate hit `p`; (s, id) from the spill; (s, None)."""
        region = self.region
        while p >= 0:
            if region[p - 1] >= DIGIT:  # an entry starts here, not a longer name's tail
                return p, _rid(region, p, self.width)
            p = region.find(pat, p + 1, e)
        return s, (self.spill[s % SPILL_SHARDS].get(pat) if h == self.full else None)

    def get(self, name: str) -> int | None:
        """Record id of key `name`, or None (slow path: explain, specials). The name sits in
        the window of one of its suffixes of two labels or more (its anchor), or in its spill."""
        q, dots = name_key(name)
        if len(dots) == 1:
            return self.tld.get(q)
        for k in reversed(dots[:-1]):  # the suffixes, shortest first
            s = zlib.crc32(q[k + 1 :]) % self.count * self.size
            h = self.region[s]
            v = self._locate(q, self.region.find(q, s, s + h), s, s + h, h)[1]
            if v is not None:
                return v
        return None

    def __len__(self) -> int:
        return self.keys

    def spilled(self) -> int:
        """Names kept in the spill dicts."""
        return sum(map(len, self.spill))

    def make_lookup(
        self, at: list[int], below: list[int], flags: list[int], has_tld_rules: bool
    ) -> Callable[[bytes, list[int]], int]:
        """The hot-path walk over a `key.name_key` pair: `compiled_lookup` where it is built and
        SAFE_RESOLVER_PURE=1 does not turn it off, else `python_lookup`."""
        if not pure_requested():
            compiled = self.compiled_lookup(at, below, flags, has_tld_rules)
            if compiled is not None:
                return compiled
        return self.python_lookup(at, below, flags, has_tld_rules)

    def compiled_lookup(
        self, at: list[int], below: list[int], flags: list[int], has_tld_rules: bool
    ) -> Callable[[bytes, list[int]], int] | None:
        """`python_lookup`'s walk in C (resolver/match/_packed.c), several times its rate; None
        where it is not built. The closure stays its fallback for what C leaves to it."""
        try:
            from resolver.match._packed import Walk
        except ImportError:
            return None
        return Walk(
            region=self.region,
            count=self.count,
            size=self.size,
            full=self.full,
            width=self.width,
            tld=self.tld,
            spill=self.spill,
            at=at,
            below=below,
            flags=flags,
            has_tld_rules=has_tld_rules,
            fallback=self.python_lookup(at, below, flags, has_tld_rules),
        )

    def python_lookup(
        self, at: list[int], below: list[int], flags: list[int], has_tld_rules: bool
    ) -> Callable[[bytes, list[int]], int]:
        """The walk as a closure (locals in cells beat attribute loads on `self`): the reference
        of `compiled_lookup`, and the walk where that is not built."""
        region = self.region
        find = region.find
        crc = zlib.crc32
        count, size, full = self.count, self.size, self.full
        tld = self.tld.get
        spill = self.spill
        shards = SPILL_SHARDS
        # Record digits are decoded inline up to three bytes (2**20 records: a policy with many
        # lists has thousands, as each name's own rules meet its ancestors' categories).
        short = SHORT if self.width > 1 else DIGIT  # ids from here on have more digit bytes
        wider = self.width == 3
        slow = self.width > 3  # `_locate` decodes the rest
        locate = self._locate

        def lookup(q: bytes, dots: list[int]) -> int:
            i = len(dots) - 2
            if i < 0:  # a single label: only a TLD rule can match
                v = tld(q) if has_tld_rules else None
                return 0 if v is None else at[v]
            k = dots[i]
            pat = q[k + 1 :]
            u = tld(q[dots[-1] + 1 :]) if has_tld_rules else None  # the deepest key found so far
            p = s = crc(pat) % count * size
            h = region[s]
            e = s + h
            while True:
                p = find(pat, p, e)
                if p < 0:
                    v = spill[s % shards].get(pat) if h == full else None
                    if v is None:
                        return 0 if u is None else below[u]
                    p = s  # keys below a spilled one may sit anywhere in the window
                else:
                    v = region[p - 1] - DIGIT
                    if v < 0 or slow:
                        p, v = locate(pat, p, s, e, h)
                        if v is None:
                            return 0 if u is None else below[u]
                    elif v >= short:
                        v = v & 63 | region[p - 2] - DIGIT << 6
                        if wider:
                            v |= region[p - 3] - DIGIT << 13
                if k < 0:
                    return at[v]
                f = flags[v]
                if not f:  # no key below this one
                    return below[v]
                u = v
                i -= 1  # k >= 0 here, so dots[i] is still a dot or the -1 before the name
                k = dots[i]
                pat = q[k + 1 :]
                if f & HOT:  # the next name anchors on itself: its own window
                    p = s = crc(pat) % count * size
                    h = region[s]
                    e = s + h

        return lookup

    # --- snapshots ------------------------------------------------------------------------

    def meta(self) -> dict[str, int]:
        return {"count": self.count, "size": self.size, "width": self.width, "keys": self.keys}

    def frames(self, chunk: int) -> Iterator[tuple[int, bytes, list[int]]]:
        """(table, joined keys, record ids) chunks of the tld (0) and spill (1...) dicts."""
        for table, items in enumerate((self.tld, *self.spill)):
            it = iter(items.items())
            while part := list(islice(it, chunk)):
                yield table, b"".join(key for key, _ in part), [rid for _, rid in part]

    @classmethod
    def assemble(
        cls,
        meta: dict[str, int],
        frames: Iterable[tuple[int, bytes, Sequence[int]]],
        region: mmap.mmap,
    ) -> PackedNames:
        """Rebuild from `meta`, `frames()` output and a region already read; raise ValueError
        on anything inconsistent."""
        tables: list[dict[bytes, int]] = [{} for _ in range(1 + SPILL_SHARDS)]
        for table, joined, rids in frames:
            keys = joined.split(b"\n")
            if keys.pop() != b"" or len(keys) != len(rids) or not 0 <= table < len(tables):
                raise ValueError("table frame: bad table, or keys and ids differ in number")
            tables[table].update(zip((key + b"\n" for key in keys), rids, strict=True))
        if len(region) < meta["count"] * meta["size"]:
            raise ValueError("region shorter than its windows")
        return cls(region, tld=tables[0], spill=tables[1:], **meta)


def _anchor(q: bytes, hot: set[bytes]) -> bytes:
    """The shortest suffix of encoded name `q` ("name\\n", two labels or more) not in `hot`."""
    j = q.rfind(b".")
    k = q.rfind(b".", 0, j)
    pat = q[k + 1 :]
    while k >= 0 and pat in hot:
        k = q.rfind(b".", 0, k)
        pat = q[k + 1 :]
    return pat
