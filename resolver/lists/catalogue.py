"""The category catalogue (`blocklists/catalogue.yaml`) and resolving a policy's list sources.

A category is one bit for the matching core; its rules come from the project's curated core
list (`blocklists/core/<id>.txt`, always present, so a fresh install blocks the obvious with
no internet), the catalogue's default sources (fetched by `lists update`) and the sources an
operator adds in the policy's `lists:` section: a local `path`, a `url`, or an RPZ zone pulled
from a primary server by zone `transfer` (`resolver.transfer`). This module only names files:
it never fetches, and it reads YAML with pyyaml's safe loader (data only, no I/O framework).
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from resolver.lists.normalize import name_or_reason
from resolver.lists.reader import check_format

CATALOGUE_ENV = "SAFE_RESOLVER_BLOCKLISTS"  # overrides the bundled `blocklists/` folder
DEFAULT_LISTS_DIR = "var/lists"
DEFAULT_MIN_KEEP_RATIO = 0.5
DEFAULT_MAX_BYTES = 200_000_000
_SOURCE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}").fullmatch
_SOURCE_KEYS = frozenset({"id", "category", "url", "path", "transfer", "format", "licence"})
_TRANSFER_KEYS = frozenset({"primary", "zone", "tsig", "max_records"})
_TSIG_KEYS = frozenset({"name", "algorithm", "secret_file"})
# RFC 8945 section 6: HMAC-SHA256 is mandatory; MD5 and SHA-1 are not offered.
TSIG_ALGORITHMS = frozenset({"hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512"})
DEFAULT_TSIG_ALGORITHM = "hmac-sha256"
DEFAULT_MAX_RECORDS = 10_000_000  # resource records one zone transfer may carry
DNS_PORT = 53
_LISTS_KEYS = frozenset({"dir", "catalogue_sources", "min_keep_ratio", "max_bytes", "sources"})


class CatalogueError(ValueError):
    """A catalogue or `lists:` section problem, naming the offending key."""


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A default source as the catalogue lists it."""

    id: str
    url: str
    format: str
    licence: str


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    name_vi: str
    name_en: str
    description_en: str
    description_vi: str
    sources: tuple[SourceSpec, ...]
    core_path: Path | None  # the curated core list, None if the catalogue ships none


@dataclass(frozen=True, slots=True)
class Catalogue:
    path: Path
    categories: dict[str, Category]


@dataclass(frozen=True, slots=True)
class TsigKey:
    """A TSIG key (RFC 8945) by reference: the secret stays in its file, read when used."""

    name: str
    algorithm: str
    secret_file: Path


@dataclass(frozen=True, slots=True)
class TransferSpec:
    """Where a zone-transfer source pulls its RPZ zone from."""

    host: str  # the primary's IP address (never a name: we would resolve it through ourselves)
    port: int
    zone: str  # lower case, no trailing dot
    tsig: TsigKey | None
    max_records: int

    @property
    def primary(self) -> str:
        """`ADDR:PORT` as the policy writes it (`[ADDR]:PORT` for IPv6)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Source:
    """One list file feeding one category, as the compiler and `lists update` see it."""

    id: str
    category: str
    format: str
    local_path: Path  # the file to read: the fetched copy, or the operator's / core file
    url: str | None = None  # fetched by `lists update` into local_path
    path: Path | None = None  # an operator's local file (never fetched)
    transfer: TransferSpec | None = None  # pulled by zone transfer into local_path
    present: bool = True  # False: not fetched yet (the compiler skips it and says so)
    licence: str = ""
    core: bool = False  # the project's curated core list


@dataclass(frozen=True, slots=True)
class ListsSettings:
    """The `lists:` section's scalar settings, validated."""

    dir: Path
    catalogue_sources: bool
    min_keep_ratio: float
    max_bytes: int


def default_blocklists_dir() -> Path:
    """`$SAFE_RESOLVER_BLOCKLISTS`, else the `blocklists/` folder beside the package."""
    override = os.environ.get(CATALOGUE_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "blocklists"  # repo/resolver/lists/this


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Load and validate a catalogue YAML (default: the bundled one)."""
    path = Path(path) if path else default_blocklists_dir() / "catalogue.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CatalogueError(f"{path}: cannot read catalogue: {exc}") from exc
    items = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise CatalogueError(f"{path}: 'categories' must be a list")
    categories: dict[str, Category] = {}
    for index, item in enumerate(items):
        category = _category(item, f"{path}: categories[{index}]", path.parent)
        if category.id in categories:
            raise CatalogueError(f"{path}: categories[{index}].id {category.id!r} repeated")
        categories[category.id] = category
    return Catalogue(path=path, categories=categories)


def _category(item: Any, where: str, folder: Path) -> Category:
    if not isinstance(item, dict):
        raise CatalogueError(f"{where}: must be a mapping")
    cid = _text(item, "id", where)
    description = item.get("description", "")
    if isinstance(description, dict):
        desc_en, desc_vi = str(description.get("en", "")), str(description.get("vi", ""))
    else:
        desc_en, desc_vi = str(description), ""
    sources = []
    for index, raw in enumerate(item.get("sources") or []):
        at = f"{where}.sources[{index}]"
        if not isinstance(raw, dict):
            raise CatalogueError(f"{at}: must be a mapping")
        sources.append(
            SourceSpec(
                id=_source_id(raw, at),
                url=_text(raw, "url", at),
                format=_format(raw, at),
                licence=_text(raw, "licence", at),
            )
        )
    core = folder / "core" / f"{cid}.txt"
    return Category(
        id=cid,
        name_vi=_text(item, "name_vi", where),
        name_en=_text(item, "name_en", where),
        description_en=desc_en,
        description_vi=desc_vi,
        sources=tuple(sources),
        core_path=core if core.is_file() else None,
    )


def lists_settings(section: dict[str, Any] | None, base_dir: Path) -> ListsSettings:
    """Validate the scalar keys of a policy's `lists:` section (all optional)."""
    section = _section(section)
    folder = Path(str(section.get("dir", DEFAULT_LISTS_DIR)))
    ratio = section.get("min_keep_ratio", DEFAULT_MIN_KEEP_RATIO)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
        raise CatalogueError(f"lists.min_keep_ratio: expected a number from 0 to 1, got {ratio!r}")
    max_bytes = section.get("max_bytes", DEFAULT_MAX_BYTES)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise CatalogueError(f"lists.max_bytes: expected a positive integer, got {max_bytes!r}")
    use_catalogue = section.get("catalogue_sources", True)
    if not isinstance(use_catalogue, bool):
        raise CatalogueError(
            f"lists.catalogue_sources: expected true or false, got {use_catalogue!r}"
        )
    return ListsSettings(
        dir=folder if folder.is_absolute() else base_dir / folder,
        catalogue_sources=use_catalogue,
        min_keep_ratio=float(ratio),
        max_bytes=max_bytes,
    )


def resolve_sources(
    catalogue: Catalogue,
    lists_section: dict[str, Any] | None,
    base_dir: Path,
    categories: set[str] | None = None,
) -> list[Source]:
    """Every list file feeding `categories` (None: all catalogue categories).

    Order: per category, the core list, then the catalogue's default sources (if
    `catalogue_sources`), then the operator's sources in the order written. Relative paths
    (`dir`, a source's `path`) are relative to `base_dir`, the policy file's folder.
    """
    section = _section(lists_section)
    settings = lists_settings(section, base_dir)
    wanted = set(catalogue.categories) if categories is None else set(categories)
    unknown = sorted(wanted - set(catalogue.categories))
    if unknown:
        raise CatalogueError(f"unknown categories {unknown}; known: {sorted(catalogue.categories)}")
    operator = _operator_sources(section.get("sources"), catalogue, settings.dir, base_dir)
    seen_ids = {s.id for s in operator}
    out: list[Source] = []
    for cid, category in catalogue.categories.items():
        if cid not in wanted:
            continue
        if category.core_path is not None:
            out.append(
                Source(
                    id=f"core-{cid}",
                    category=cid,
                    format="domains",
                    local_path=category.core_path,
                    path=category.core_path,
                    licence="Apache-2.0 (safe-resolver project)",
                    core=True,
                )
            )
        if settings.catalogue_sources:
            for spec in category.sources:
                if spec.id in seen_ids:
                    continue  # an operator source with the same id replaces the default
                out.append(
                    _fetched(spec.id, cid, spec.url, spec.format, spec.licence, settings.dir)
                )
        out.extend(s for s in operator if s.category == cid)
    return out


def _operator_sources(raw: Any, catalogue: Catalogue, folder: Path, base_dir: Path) -> list[Source]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise CatalogueError("lists.sources: expected a list")
    out: list[Source] = []
    ids: set[str] = set()
    for index, item in enumerate(raw):
        at = f"lists.sources[{index}]"
        if not isinstance(item, dict):
            raise CatalogueError(
                f"{at}: expected a mapping with id, category and url, path or transfer"
            )
        extra = sorted(set(item) - _SOURCE_KEYS)
        if extra:
            raise CatalogueError(f"{at}: unknown keys {extra}; allowed: {sorted(_SOURCE_KEYS)}")
        sid = _source_id(item, at)
        if sid in ids:
            raise CatalogueError(f"{at}.id: {sid!r} used twice")
        ids.add(sid)
        category = _text(item, "category", at)
        if category not in catalogue.categories:
            raise CatalogueError(
                f"{at}.category: unknown category {category!r}; "
                f"known: {sorted(catalogue.categories)}"
            )
        fmt = _format(item, at)
        licence = str(item.get("licence", ""))
        has_url, has_path = "url" in item, "path" in item
        if sum((has_url, has_path, "transfer" in item)) != 1:
            raise CatalogueError(f"{at}: give exactly one of 'url', 'path' or 'transfer'")
        if "transfer" in item:
            if fmt not in ("auto", "rpz"):
                raise CatalogueError(f"{at}.format: a zone transfer delivers rpz, not {fmt!r}")
            spec = _transfer(item["transfer"], f"{at}.transfer", base_dir)
            local = transfer_copy(folder, sid)
            out.append(
                Source(
                    id=sid,
                    category=category,
                    format="rpz",
                    local_path=local,
                    present=local.is_file(),
                    licence=licence,
                    transfer=spec,
                )
            )
        elif has_url:
            url = _text(item, "url", at)
            if not url.startswith(("http://", "https://")):
                raise CatalogueError(f"{at}.url: expected an http:// or https:// URL, got {url!r}")
            out.append(_fetched(sid, category, url, fmt, licence, folder))
        else:
            path = Path(_text(item, "path", at))
            path = path if path.is_absolute() else base_dir / path
            out.append(
                Source(
                    id=sid,
                    category=category,
                    format=fmt,
                    local_path=path,
                    path=path,
                    present=path.is_file(),
                    licence=licence,
                )
            )
    return out


def fetched_copy(folder: Path, source_id: str) -> Path:
    """Where `lists update` keeps the last good copy of a URL source."""
    return folder / f"{source_id}.list"


def transfer_copy(folder: Path, source_id: str) -> Path:
    """Where the zone-transfer client keeps the last good copy of a transferred zone."""
    return folder / f"{source_id}.rpz"


def _transfer(raw: Any, at: str, base_dir: Path) -> TransferSpec:
    """`transfer: {primary: "ADDR[:PORT]", zone: NAME, tsig: {...}, max_records: N}`."""
    if not isinstance(raw, dict):
        raise CatalogueError(f"{at}: expected a mapping with primary, zone and tsig")
    extra = sorted(set(raw) - _TRANSFER_KEYS)
    if extra:
        raise CatalogueError(f"{at}: unknown keys {extra}; allowed: {sorted(_TRANSFER_KEYS)}")
    host, port = _primary(_text(raw, "primary", at), f"{at}.primary")
    zone, reason = name_or_reason(_text(raw, "zone", at))
    if reason:
        raise CatalogueError(f"{at}.zone: not a DNS zone name ({reason})")
    limit = raw.get("max_records", DEFAULT_MAX_RECORDS)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise CatalogueError(f"{at}.max_records: expected a positive integer, got {limit!r}")
    tsig = None if raw.get("tsig") is None else _tsig(raw["tsig"], f"{at}.tsig", base_dir)
    return TransferSpec(host=host, port=port, zone=zone, tsig=tsig, max_records=limit)


def _primary(text: str, at: str) -> tuple[str, int]:
    """ADDR, ADDR:PORT, [V6ADDR]:PORT or a bare IPv6 address; the port defaults to 53."""
    host, port = text, str(DNS_PORT)
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise CatalogueError(f"{at}: expected [ADDR]:PORT, got {text!r}")
        port = rest[1:] or port
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise CatalogueError(
            f"{at}: expected an IP address (ADDR or ADDR:PORT), got {text!r}"
        ) from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise CatalogueError(f"{at}: port must be 1-65535, got {port!r}")
    return str(address), int(port)


def _tsig(raw: Any, at: str, base_dir: Path) -> TsigKey:
    if not isinstance(raw, dict):
        raise CatalogueError(f"{at}: expected a mapping with name, algorithm and secret_file")
    extra = sorted(set(raw) - _TSIG_KEYS)
    if extra:
        raise CatalogueError(f"{at}: unknown keys {extra}; allowed: {sorted(_TSIG_KEYS)}")
    algorithm = str(raw.get("algorithm", DEFAULT_TSIG_ALGORITHM)).lower().rstrip(".")
    if algorithm not in TSIG_ALGORITHMS:
        raise CatalogueError(
            f"{at}.algorithm: {algorithm!r} is not one of {sorted(TSIG_ALGORITHMS)}"
        )
    secret = Path(_text(raw, "secret_file", at))
    return TsigKey(
        name=_text(raw, "name", at).lower().rstrip("."),
        algorithm=algorithm,
        secret_file=secret if secret.is_absolute() else base_dir / secret,
    )


def _fetched(sid: str, category: str, url: str, fmt: str, licence: str, folder: Path) -> Source:
    local = fetched_copy(folder, sid)
    return Source(
        id=sid,
        category=category,
        format=fmt,
        local_path=local,
        url=url,
        present=local.is_file(),
        licence=licence,
    )


def _section(section: Any) -> dict[str, Any]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise CatalogueError("lists: expected a mapping")
    extra = sorted(set(section) - _LISTS_KEYS)
    if extra:
        raise CatalogueError(f"lists: unknown keys {extra}; allowed: {sorted(_LISTS_KEYS)}")
    return section


def _text(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CatalogueError(f"{where}.{key}: required text is missing")
    return value.strip()


def _source_id(item: dict[str, Any], where: str) -> str:
    sid = _text(item, "id", where)
    if not _SOURCE_ID(sid):
        raise CatalogueError(
            f"{where}.id: {sid!r} must be lower-case letters, digits, '.', '_' or '-' "
            "(it names the fetched file)"
        )
    return sid


def _format(item: dict[str, Any], where: str) -> str:
    fmt = str(item.get("format", "auto"))
    try:
        return check_format(fmt)
    except ValueError as exc:
        raise CatalogueError(f"{where}.format: {exc}") from None
