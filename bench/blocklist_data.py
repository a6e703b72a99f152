"""The 1M-domain blocklist of the DNS benchmark, written once in every peer resolver's format.

The names are the union of the real block lists in `/work/shared/data` (every list outside
`popularity/`, `safesearch/`, the DoH address lists and UT1's allow lists), parsed by our own
list readers, then a seeded sample of `count` of them in sorted order: the same input gives
the same list on every run. Without the data directory, seeded generated names stand in.
Every rule means "this domain and every name below it" in every format.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

from resolver.build.listfile import read_list
from resolver.lists.model import RuleAction

DATA = Path(os.environ.get("SAFE_RESOLVER_DATA", "/work/shared/data"))
SEED = 20260301
_SKIP_DIRS = {"popularity", "safesearch"}
_SKIP_FILES = {
    "dibdot-doh-ipv4.txt",
    "dibdot-doh-ipv6.txt",
    "liste_blanche.domains.txt",
    "exceptions_liste_bu.domains.txt",
    "global_usage.txt",
}
_BLOCKING = {RuleAction.BLOCK, RuleAction.NXDOMAIN, RuleAction.NODATA}
RPZ_HEAD = (
    "$TTL 300\n@ IN SOA localhost. hostmaster.localhost. 1 3600 600 86400 300\n  IN NS localhost.\n"
)


@dataclass
class Blocklist:
    """One list of names and the files that hold it, one per format."""

    names: list[str]
    origin: str  # where the names came from, for the report
    domains: Path  # one name per line (ours)
    unbound: Path  # local-zone: "d." always_nxdomain
    dnsmasq: Path  # address=/d/
    rpz: Path  # d CNAME . and *.d CNAME . (BIND, Knot Resolver, PowerDNS Recursor)

    def add_rule(self, name: str) -> None:
        """Append one more blocked name to every file (the reload benchmark's list change)."""
        self.names.append(name)
        for path, text in (
            (self.domains, f"{name}\n"),
            (self.unbound, f'local-zone: "{name}." always_nxdomain\n'),
            (self.dnsmasq, f"address=/{name}/\n"),
            (self.rpz, f"{name} CNAME .\n*.{name} CNAME .\n"),
        ):
            with path.open("a") as out:
                out.write(text)
        serial_bump(self.rpz)


def real_names() -> set[str]:
    """Every blocked name in the data directory (empty when it is absent)."""
    names: set[str] = set()
    if not DATA.is_dir():
        return names
    for path in sorted(DATA.rglob("*")):
        if not path.is_file() or path.name in _SKIP_FILES or path.suffix == ".md":
            continue
        if path.relative_to(DATA).parts[0] in _SKIP_DIRS or path.name.endswith(".sh"):
            continue
        result = read_list(path)
        names.update(e.name for e in result.entries if e.action in _BLOCKING)
    return names


def generated_names(count: int) -> list[str]:
    """Seeded stand-in names shaped like real ones (label lengths, a few TLDs)."""
    rng = random.Random(SEED)
    tlds = ["com", "net", "org", "info", "vn", "com.vn", "xyz", "top", "ru", "de"]
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    out: set[str] = set()
    while len(out) < count:
        label = "".join(rng.choice(letters) for _ in range(rng.randint(5, 14)))
        out.add(f"{label}.{rng.choice(tlds)}")
    return sorted(out)


def choose_names(count: int) -> tuple[list[str], str]:
    names = real_names()
    if len(names) >= count:
        picked = sorted(random.Random(SEED).sample(sorted(names), count))
        return picked, f"seeded sample of {count:,} of {len(names):,} names in {DATA}"
    if names:
        extra = [n for n in generated_names(count) if n not in names][: count - len(names)]
        return sorted(names | set(extra)), f"{len(names):,} names from {DATA} + generated"
    return generated_names(count), f"{count:,} seeded generated names ({DATA} absent)"


def write_blocklist(folder: Path, count: int = 1_000_000) -> Blocklist:
    """Build the list and write it in every format under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    names, origin = choose_names(count)
    lists = Blocklist(
        names,
        origin,
        folder / "block-1m.txt",
        folder / "block-1m.unbound.conf",
        folder / "block-1m.dnsmasq.conf",
        folder / "block-1m.rpz",
    )
    lists.domains.write_text("".join(f"{n}\n" for n in names))
    lists.unbound.write_text("".join(f'local-zone: "{n}." always_nxdomain\n' for n in names))
    lists.dnsmasq.write_text("".join(f"address=/{n}/\n" for n in names))
    with lists.rpz.open("w") as out:
        out.write(RPZ_HEAD)
        for start in range(0, len(names), 100_000):
            out.write(
                "".join(f"{n} CNAME .\n*.{n} CNAME .\n" for n in names[start : start + 100_000])
            )
    return lists


def serial_bump(rpz: Path) -> None:
    """Raise the SOA serial so zone reloaders (BIND, Knot) see a new version."""
    text = rpz.read_text()
    head, _, rest = text.partition("\n@ IN SOA localhost. hostmaster.localhost. ")
    serial, _, tail = rest.partition(" ")
    rpz.write_text(f"{head}\n@ IN SOA localhost. hostmaster.localhost. {int(serial) + 1} {tail}")
