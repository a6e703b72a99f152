"""Policy file in, immutable `PolicySnapshot` out (or `PolicyError` listing every problem).

Synchronous and CPU-bound: the server runs it in a worker thread or process. Lists are read through
the category catalogue (`resolver.lists`), folded into one `CategoryIndex` (one bit per category the
policy uses) and cached on disk keyed by the lists' bytes, so a restart or a policy-only change
does not re-parse millions of rules. The mandated list gets an index of its own so no allow rule
can reach it; the profiles' own allow/deny/keyword rules go into a third, small index rebuilt
every time.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from resolver.fileio import atomic_write
from resolver.lists.catalogue import (
    CatalogueError,
    Source,
    lists_settings,
    load_catalogue,
    resolve_sources,
)
from resolver.lists.model import Entry, Keyword, RuleAction, Scope
from resolver.lists.reader import read_list
from resolver.match.index import CategoryIndex, IndexBuilder
from resolver.match.snapshot import cache_key, load_or_build
from resolver.policy.decision import Action
from resolver.policy.safesearch import DEFAULT_PATH as SAFESEARCH_PATH
from resolver.policy.safesearch import load_safesearch
from resolver.policy.schema import MANDATED, PolicySpec, read_policy
from resolver.policy.snapshot import PolicySnapshot, Profile
from resolver.yamlsource import ConfigError, Problem

BACKEND = "suffix"
_generation = itertools.count(1)

# Bypass-prevention names (exact) and what they get; see policy/README.md "bypass".
BYPASS_NAMES: dict[str, tuple[str, Action]] = {
    "use-application-dns.net": ("firefox_canary", Action.NXDOMAIN),
    "mask.icloud.com": ("icloud_private_relay", Action.NXDOMAIN),
    "mask-h2.icloud.com": ("icloud_private_relay", Action.NXDOMAIN),
    "_dns.resolver.arpa": ("ddr", Action.NODATA),
}


class PolicyError(ConfigError):
    """The policy cannot be used; `problems` lists every error (file:line:column)."""


@dataclass(slots=True)
class _Loaded:
    category: str
    id: str
    path: Path
    format: str
    entries: list[Entry]
    keywords: list[Keyword]
    summary: dict[str, Any]  # what the snapshot and warnings need, also kept in the sidecar


def category_ids() -> frozenset[str]:
    """Every category the catalogue defines (plus `mandated`)."""
    return frozenset(load_catalogue().categories) | {MANDATED}


def compile_policy(path: Path | str, *, now: datetime | None = None) -> PolicySnapshot:
    """Validate, read lists, build indexes; raises `PolicyError` with every problem found."""
    started = time.perf_counter()
    path = Path(path)
    catalogue = load_catalogue()
    spec, problems = read_policy(path, frozenset(catalogue.categories) | {MANDATED})
    if spec is None:
        raise PolicyError(problems)
    try:
        table = load_safesearch(spec.safesearch or SAFESEARCH_PATH)
    except ConfigError as exc:
        raise PolicyError(exc.problems) from None
    used = sorted({c for p in spec.profiles.values() for c in p.categories}
                  | {c for s in spec.schedules.values() for c in s.block})  # fmt: skip
    lists_section = dict(spec.lists)
    lists_section["sources"] = [*(lists_section.get("sources") or []), *spec.mandated_sources]
    base = path.parent
    try:
        sources = resolve_sources(catalogue, lists_section, base, {*used, MANDATED})
    except CatalogueError as exc:
        raise PolicyError([Problem(str(path), *spec.lists_at, f"lists: {exc}")]) from None
    warnings: list[Problem] = list(spec.warnings)
    present = _present(sources, warnings, str(path))
    bits = {cat: bit for bit, cat in enumerate(used)}
    cache_dir = lists_settings(spec.lists, base).dir / "index-cache"
    index, summaries = _cached_index(
        cache_dir, bits, [s for s in present if s.category != MANDATED]
    )
    mandated_lists = [s for s in present if s.category == MANDATED]
    mandated = None
    if mandated_lists:
        mandated, more = _cached_index(cache_dir, {MANDATED: 0}, mandated_lists)
        summaries += more
    warnings += [_skipped_warning(summary) for summary in summaries if summary["rejects"]]
    unusable = [
        Problem(summary["path"], 1, 1,
                f"list {summary['id']!r} has no usable rules ({summary['rejects']} rejects)")
        for summary in summaries
        if not summary["rules"]
    ]  # fmt: skip
    if unusable:
        # A list that fails entirely must not go live as an empty list: keep the old policy.
        raise PolicyError(unusable + warnings)
    profiles = _profiles(spec, bits)
    own = _own_index(spec, profiles)
    if mandated is not None:
        _warn_shadowed(spec, mandated, warnings, str(path))
    sizes = {cat: 0 for cat in used}
    for bit, count in index.rule_counts().items():
        sizes[used[bit]] = count
    if mandated is not None:
        sizes[MANDATED] = len(mandated)
    bypass = {name: action for name, (switch, action) in BYPASS_NAMES.items()
              if spec.bypass[switch]}  # fmt: skip
    snapshot = PolicySnapshot(
        generation=next(_generation),
        source=str(path),
        timezone=spec.timezone,
        profiles=profiles,
        default_profile=profiles[spec.default_profile],
        categories=bits,
        index=index,
        mandated=mandated,
        mandated_block_mode=spec.mandated_block_mode,
        mandated_ttl=spec.mandated_ttl,
        own=own,
        safesearch=table,
        bypass_names=bypass,
        block_svcb=spec.bypass["https_svcb"],
        trusted_forwarders=tuple(spec.trusted_forwarders),
        networks=spec.networks,
        network_profiles=tuple(profiles[pid] for pid in spec.network_profiles),
        list_sizes=sizes,
        warnings=warnings,
        expect=spec.expect,
        sources=[
            {key: summary[key] for key in ("category", "id", "path", "format", "rules", "rejects")}
            for summary in summaries
        ],
        has_keywords=bool(index._keyword_rules),
        own_keywords=any(p.keywords for p in spec.profiles.values()),
        special_names=frozenset(table.hosts) | frozenset(bypass),
        cache_dir=str(cache_dir),
        overlay=spec.overlay,
    )
    snapshot.compile_seconds = time.perf_counter() - started
    return snapshot


def _present(sources: list[Source], warnings: list[Problem], policy: str) -> list[Source]:
    """The sources whose file is there; one warning naming those not fetched yet."""
    present = [s for s in sources if s.present and Path(s.local_path).exists()]
    missing = [s.id for s in sources if s not in present]
    if missing:
        warnings.append(
            Problem(
                policy,
                1,
                1,
                f"{len(missing)} lists not fetched yet ("
                f"{', '.join(missing)}); the curated core lists serve until "
                "`safe-resolver lists update` runs",
                "warning",
            )
        )
    return present


def _parse(src: Source) -> _Loaded:
    path = Path(src.local_path)
    result = read_list(path, src.format)
    counts = result.reject_counts()
    return _Loaded(
        src.category,
        src.id,
        path,
        result.format,
        result.entries,
        result.keywords,
        {
            "category": src.category,
            "id": src.id,
            "path": str(path),
            "format": result.format,
            "rules": len(result.entries) + len(result.keywords),
            "rejects": len(result.rejects),
            "first_reject_line": result.rejects[0].line if result.rejects else 0,
            "reject_counts": counts,
        },
    )


def _skipped_warning(summary: dict[str, Any]) -> Problem:
    counts = ", ".join(f"{n} {why}" for why, n in sorted(summary["reject_counts"].items()))
    return Problem(
        summary["path"],
        summary["first_reject_line"],
        1,
        f"{summary['rejects']} lines skipped ({counts})",
        "warning",
    )


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _cached_index(
    cache_dir: Path, bits: dict[str, int], sources: list[Source]
) -> tuple[CategoryIndex, list[dict[str, Any]]]:
    """One index over `sources` and a summary per list (rules, rejects, detected format).

    Keyed on the lists' bytes: when the same bytes were compiled before (by a restart, or by the
    reload worker process a moment ago) neither is rebuilt and no list is parsed again; the
    summaries come from a sidecar file beside the cached index.
    """
    parts = ["policy-index-v3", BACKEND, repr(sorted(bits.items()))]
    parts += [f"{s.category}|{s.id}|{s.format}|{_digest(Path(s.local_path))}" for s in sources]
    key = cache_key(parts)
    sidecar = cache_dir / f"{key}.lists.json"
    summaries: list[dict[str, Any]] = []

    def build() -> CategoryIndex:
        builder = IndexBuilder(BACKEND)
        for src in sources:
            s = _parse(src)
            summaries.append(s.summary)
            entries = s.entries
            if s.category == MANDATED:  # rewrite-only RPZ rules must still trip the lookup
                entries = [*entries, *(Entry(e.name, e.scope) for e in entries
                                       if e.action is RuleAction.REWRITE)]  # fmt: skip
            builder.add(bits[s.category], entries, str(s.path))
            if s.keywords:
                builder.add_keywords(bits[s.category], s.keywords, str(s.path))
        return builder.build()

    index = load_or_build(cache_dir, key, build)
    if summaries:
        # A read-only cache folder only costs the next start a re-parse.
        with contextlib.suppress(OSError):
            atomic_write(sidecar, json.dumps(summaries).encode())
    else:
        try:
            summaries = json.loads(sidecar.read_bytes())
        except (OSError, ValueError):
            summaries = [_parse(src).summary for src in sources]
    return index, summaries


def _profiles(spec: PolicySpec, bits: dict[str, int]) -> dict[str, Profile]:
    out = {}
    for num, (pid, p) in enumerate(spec.profiles.items()):
        mask = 0
        for cat in p.categories:
            mask |= 1 << bits[cat]
        out[pid] = Profile(
            id=pid, num=num, mask=mask, categories=p.categories,
            allow_bit=3 * num, deny_bit=3 * num + 1, keyword_bit=3 * num + 2,
            search=p.safe_search, youtube=p.youtube, block_mode=p.block_mode,
            block_ttl=p.block_ttl, log=p.log, bypass=p.bypass,
            schedules=tuple(spec.schedules[s] for s in p.schedules),
            cat_bits={cat: 1 << bit for cat, bit in bits.items()},
        )  # fmt: skip
    return out


def _own_index(spec: PolicySpec, profiles: dict[str, Profile]) -> CategoryIndex | None:
    """The profiles' allow, deny and keyword rules: small, rebuilt on every compile."""
    builder = IndexBuilder(BACKEND)
    empty = True
    for pid, p in spec.profiles.items():
        compiled = profiles[pid]
        for bit, rules in ((compiled.allow_bit, p.allow), (compiled.deny_bit, p.deny)):
            for rule in rules:
                builder.add(bit, [Entry(rule.name, rule.scope, RuleAction.BLOCK)], rule.where)
                empty = False
        if p.keywords:
            builder.add_keywords(compiled.keyword_bit, [Keyword(k) for k in p.keywords],
                                 f"{p.where} keywords")  # fmt: skip
            empty = False
    return None if empty else builder.build()


def _warn_shadowed(
    spec: PolicySpec, mandated: CategoryIndex, warnings: list[Problem], policy: str
) -> None:
    """An allow entry the mandated list overrides can never take effect: say so."""
    for p in spec.profiles.values():
        for rule in p.allow:
            if rule.scope is not Scope.BELOW and mandated.lookup_name(rule.name):
                file, line, column = rule.where.rsplit(":", 2)
                warnings.append(
                    Problem(
                        file,
                        int(line),
                        int(column),
                        f"allow {rule.text!r} in "
                        f"profile {p.id!r} is unreachable: the name is on the "
                        "mandated list, which no allow overrides",
                        "warning",
                    )
                )
