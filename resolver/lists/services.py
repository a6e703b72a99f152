"""The services catalogue (`blocklists/services.yaml`): apps children use, each as its domains.

A policy blocks or allows a service by its id (`block_services: [tiktok]`) instead of listing
TikTok's twenty domains in every profile; the catalogue is maintained with the project. Like
the category catalogue it is read with pyyaml's safe loader and checked whole: a mistake names
the service and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from resolver.lists.catalogue import CatalogueError, default_blocklists_dir
from resolver.lists.normalize import is_ip_literal, name_or_reason

SERVICES_FILE = "services.yaml"
_SERVICE_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?").fullmatch
_KEYS = frozenset({"id", "name_vi", "name_en", "category", "domains"})


@dataclass(frozen=True, slots=True)
class Service:
    """One service: its names for people, the category it is counted under, its domains
    (normalized; each covers itself and every name below it)."""

    id: str
    name_vi: str
    name_en: str
    category: str
    domains: tuple[str, ...]

    def name(self, lang: str) -> str:
        return self.name_vi if lang == "vi" else self.name_en


@dataclass(frozen=True, slots=True)
class Services:
    path: Path
    services: dict[str, Service]


def load_services(path: str | Path | None = None) -> Services:
    """Load and check a services catalogue (default: the bundled one); CatalogueError names
    the first problem."""
    path = Path(path) if path else default_blocklists_dir() / SERVICES_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CatalogueError(f"{path}: cannot read services: {exc}") from exc
    items = data.get("services") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise CatalogueError(f"{path}: 'services' must be a list")
    out: dict[str, Service] = {}
    for index, item in enumerate(items):
        service = _service(item, f"{path}: services[{index}]")
        if service.id in out:
            raise CatalogueError(f"{path}: services[{index}].id {service.id!r} repeated")
        out[service.id] = service
    return Services(path, out)


def _service(item: Any, where: str) -> Service:
    if not isinstance(item, dict):
        raise CatalogueError(f"{where}: must be a mapping")
    extra = sorted(set(item) - _KEYS)
    if extra:
        raise CatalogueError(f"{where}: unknown keys {extra}; allowed: {sorted(_KEYS)}")
    texts = {}
    for key in ("id", "name_vi", "name_en", "category"):
        value = item.get(key)
        if not isinstance(value, str) or not value.strip():
            raise CatalogueError(f"{where}.{key}: required text is missing")
        texts[key] = value.strip()
    if not _SERVICE_ID(texts["id"]):
        raise CatalogueError(
            f"{where}.id: {texts['id']!r} must be lower-case letters, digits and '-'"
        )
    raw = item.get("domains")
    if not isinstance(raw, list) or not raw:
        raise CatalogueError(f"{where}.domains: a list of at least one domain is required")
    domains: list[str] = []
    for i, text in enumerate(raw):
        name, reason = name_or_reason(str(text))
        if not reason and (is_ip_literal(name) or "." not in name):
            reason = "not a domain name"
        if reason:
            raise CatalogueError(f"{where}.domains[{i}]: {text!r}: {reason}")
        if name in domains:
            raise CatalogueError(f"{where}.domains[{i}]: {name!r} listed twice")
        domains.append(name)
    return Service(
        texts["id"], texts["name_vi"], texts["name_en"], texts["category"], tuple(domains)
    )
