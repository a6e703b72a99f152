"""Safe-search rewrites: which names are answered with a CNAME to an engine's safe front end.

The host lists are data (`blocklists/safesearch.yaml`) so they follow the engines without a code
change. Compiled into one dict `name -> Engine`: the hot path costs one dict lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from resolver.yamlsource import Checker, ConfigError, Document

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "blocklists" / "safesearch.yaml"
LEVELS = ("off", "moderate", "strict")
SETTINGS = ("search", "youtube")

# Query types a rewrite answers (A, AAAA, HTTPS); every other type for these names gets NODATA.
REWRITE_QTYPES = frozenset({1, 28, 65})


@dataclass(frozen=True, slots=True)
class Engine:
    id: str
    setting: str  # "search" or "youtube": which profile level applies
    targets: dict[str, str]  # level ("moderate", "strict") -> CNAME target


@dataclass(frozen=True, slots=True)
class SafeSearchTable:
    source: str
    hosts: dict[str, Engine]  # exact host -> engine
    engines: dict[str, Engine]


def read_safesearch(doc: Document) -> SafeSearchTable:
    """Check the loaded safe-search data file; raises `ConfigError` with file:line:column."""
    check = Checker(doc)
    root = check.mapping((), doc.data, ["engines"], required=["engines"])
    hosts: dict[str, Engine] = {}
    engines: dict[str, Engine] = {}
    keys = ["setting", "target", "targets", "hosts", "patterns", "suffixes"]
    for eid, spec in check.mapping(("engines",), root.get("engines"), None).items():
        at = ("engines", eid)
        spec = check.mapping(at, spec, keys, required=["setting", "hosts"])
        setting = check.choice((*at, "setting"), spec.get("setting", "search"), SETTINGS)
        if "target" in spec and check.type_ok((*at, "target"), spec["target"], str):
            targets = {"moderate": spec["target"].lower(), "strict": spec["target"].lower()}
        else:
            raw = check.mapping(
                (*at, "targets"),
                spec.get("targets"),
                ["moderate", "strict"],
                required=["moderate", "strict"],
            )
            targets = {k: str(v).lower() for k, v in raw.items()}
        engine = Engine(str(eid), setting or "search", targets)
        engines[engine.id] = engine
        names = check.str_list((*at, "hosts"), spec.get("hosts"))
        suffixes = check.str_list((*at, "suffixes"), spec.get("suffixes"))
        for i, pattern in enumerate(check.str_list((*at, "patterns"), spec.get("patterns"))):
            if "{}" not in pattern:
                check.error((*at, "patterns", i), f"pattern {pattern!r} has no {{}} placeholder")
            names += [pattern.replace("{}", s) for s in suffixes]
        for name in names:
            name = name.lower().rstrip(".")
            if name in hosts and hosts[name].id != engine.id:
                check.error(at, f"{name} is listed for both {hosts[name].id} and {engine.id}")
            hosts[name] = engine
    if not check.ok:
        raise ConfigError(check.problems)
    return SafeSearchTable(doc.file, hosts, engines)
