"""A transferred RPZ zone held compactly, in the shape dnspython's transfer machinery writes to.

`dns.zone.Zone` keeps several objects per name (89 MB per 100,000 names measured) and takes
minutes to write a million names back out; an authority's list has millions. Here a zone is one
dict: owner name (relative to the apex, lower case, "@" for the apex) -> its records as
zone-file text ("TTL IN TYPE RDATA", one per line), with equal texts shared. An AXFR fills it
through a replacement transaction; an IXFR turns only the names it touches into dnspython
rdatasets. The last good copy on disk is this same text, one record per line after an `$ORIGIN`,
which the RPZ list parser reads like any RPZ file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.transaction

APEX = "@"


class CompactZone(dns.transaction.TransactionManager):
    """One zone: `owners` maps a relative owner name to its records' text."""

    def __init__(self, origin: str) -> None:
        self.origin = dns.name.from_text(origin)  # absolute
        self.owners: dict[str, str] = {}
        # The owners incremental transfers changed, with their text before the first change
        # (None: the owner was absent); None once a full transfer replaced everything.
        self.before: dict[str, str | None] | None = {}

    # -- what the transfer code asks ----------------------------------------------------------

    def soa(self) -> dns.rdtypes.ANY.SOA.SOA | None:
        """The apex SOA record, None while the zone is empty."""
        with self.reader() as txn:
            rdataset = txn.get(dns.name.empty, dns.rdatatype.SOA)
        return cast(dns.rdtypes.ANY.SOA.SOA, rdataset[0]) if rdataset else None

    def lines(self) -> Iterator[str]:
        """The zone as a file: `$ORIGIN`, the apex records first, one record per line."""
        yield f"$ORIGIN {self.origin.to_text()}\n"
        apex = self.owners.get(APEX)
        if apex is not None:
            yield from (f"{APEX} {line}\n" for line in apex.split("\n"))
        for owner, text in self.owners.items():
            if owner != APEX:
                yield from (f"{owner} {line}\n" for line in text.split("\n"))

    @classmethod
    def load(cls, path: Path, origin: str) -> CompactZone | None:
        """Read a copy `lines()` wrote; None when it is missing or is not this zone's."""
        zone = cls(origin)
        shared: dict[str, str] = {}
        owners = zone.owners
        try:
            with path.open(encoding="ascii") as handle:
                if handle.readline().split() != ["$ORIGIN", zone.origin.to_text()]:
                    return None
                for line in handle:
                    owner, _, text = line.rstrip("\n").partition(" ")
                    text = shared.setdefault(text, text)
                    held = owners.get(owner)
                    owners[owner] = text if held is None else f"{held}\n{text}"
        except (OSError, UnicodeDecodeError):
            return None
        return zone if zone.soa() is not None else None

    # -- dns.transaction.TransactionManager ---------------------------------------------------

    def reader(self) -> _Transaction:
        return _Transaction(self, replacement=False, read_only=True)

    def writer(self, replacement: bool = False) -> _Transaction:
        return _Transaction(self, replacement=replacement)

    def origin_information(self) -> tuple[dns.name.Name, bool, dns.name.Name]:
        return self.origin, True, dns.name.empty  # names are held relative to the apex

    def get_class(self) -> dns.rdataclass.RdataClass:
        return dns.rdataclass.IN

    def from_wire_origin(self) -> dns.name.Name:
        return self.origin


class _Transaction(dns.transaction.Transaction):
    """Changes gather in `changes` (owner -> text, None for deleted) until commit."""

    def __init__(self, zone: CompactZone, replacement: bool, read_only: bool = False) -> None:
        super().__init__(zone, replacement, read_only)
        self.zone = zone
        self.changes: dict[str, str | None] = {}
        self.shared: dict[str, str] = {}

    def _text(self, name: dns.name.Name) -> str | None:
        key = name.to_text().lower()
        if key in self.changes:
            return self.changes[key]
        return None if self.replacement else self.zone.owners.get(key)

    def _get_rdataset(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, covers: Any
    ) -> dns.rdataset.Rdataset | None:
        text = self._text(name)
        if text is None:
            return None
        found: dns.rdataset.Rdataset | None = None
        for line in text.split("\n"):
            ttl, _, type_text, rdata_text = line.split(" ", 3)
            if dns.rdatatype.from_text(type_text) != rdtype:
                continue
            rdata = dns.rdata.from_text(
                dns.rdataclass.IN, rdtype, rdata_text, origin=dns.name.empty
            )
            if rdata.covers() != covers:
                continue
            if found is None:
                found = dns.rdataset.Rdataset(dns.rdataclass.IN, rdtype, covers, int(ttl))
            found.add(rdata)
        return found

    def _put_rdataset(self, name: dns.name.Name, rdataset: dns.rdataset.Rdataset) -> None:
        type_text = dns.rdatatype.to_text(rdataset.rdtype)
        kept = self._without(name, rdataset.rdtype, rdataset.covers)
        added = [f"{rdataset.ttl} IN {type_text} {rdata.to_text()}" for rdata in rdataset]
        text = "\n".join([*kept, *added])
        self.changes[name.to_text().lower()] = self.shared.setdefault(text, text)

    def _delete_name(self, name: dns.name.Name) -> None:
        self.changes[name.to_text().lower()] = None

    def _delete_rdataset(self, name: dns.name.Name, rdtype: Any, covers: Any) -> None:
        kept = self._without(name, rdtype, covers)
        self.changes[name.to_text().lower()] = "\n".join(kept) if kept else None

    def _without(self, name: dns.name.Name, rdtype: Any, covers: Any) -> list[str]:
        """The owner's record lines other than those of (rdtype, covers)."""
        text = self._text(name)
        if text is None:
            return []
        type_text = dns.rdatatype.to_text(rdtype)
        kept = []
        for line in text.split("\n"):
            _, _, line_type, rdata_text = line.split(" ", 3)
            if line_type == type_text and (
                covers == dns.rdatatype.NONE
                or dns.rdata.from_text(dns.rdataclass.IN, rdtype, rdata_text).covers() == covers
            ):
                continue
            kept.append(line)
        return kept

    def _name_exists(self, name: dns.name.Name) -> bool:
        return self._text(name) is not None

    def _changed(self) -> bool:
        return bool(self.changes) or self.replacement

    def _end_transaction(self, commit: bool) -> None:
        if not commit:
            return
        zone = self.zone
        owners = {} if self.replacement else zone.owners
        if self.replacement:
            zone.before = None
        elif zone.before is not None:
            for owner in self.changes:
                zone.before.setdefault(owner, owners.get(owner))
        for owner, text in self.changes.items():
            if text is None:
                owners.pop(owner, None)
            else:
                owners[owner] = text
        zone.owners = owners

    def _set_origin(self, origin: dns.name.Name | None) -> None:
        raise NotImplementedError("a transferred zone keeps its origin")
