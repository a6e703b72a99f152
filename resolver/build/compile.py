"""A policy build: read every file a policy needs, compile it once, write the snapshot file.

This is the only place a build touches files: the policy and its overlay, the safe-search
table, the category and services catalogues, the list files (hashed for the index cache, parsed
only when their bytes are new), the index cache, the last good copies and the snapshot file.
`resolver.policy` assembles the snapshot from what this module hands it.

`build_snapshot` is what a reload runs (in an idle child process, `python -m resolver.build`):
its result is one snapshot file the serving processes map. `compile_policy` is the same compile
kept in memory, for the command line (`check`, `explain`, `policy test`) and tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from resolver.build import lastgood, snapshotfile
from resolver.build.indexes import ListInput, cached_index, digest, save_index
from resolver.lists.catalogue import (
    CatalogueError,
    ListsSettings,
    Source,
    lists_settings,
    load_catalogue,
    resolve_sources,
)
from resolver.lists.services import load_services
from resolver.policy.compile import IndexPlan, PolicyError, assemble, plan
from resolver.policy.safesearch import DEFAULT_PATH as SAFESEARCH_PATH
from resolver.policy.safesearch import SafeSearchTable, read_safesearch
from resolver.policy.schema import MANDATED, PolicySpec, read_policy
from resolver.policy.snapshot import PolicySnapshot
from resolver.yamlsource import ConfigError, Document, Problem, load_yaml

log = logging.getLogger(__name__)
INDEX_CACHE = "index-cache"


@dataclass(frozen=True, slots=True)
class Built:
    """A finished build: the snapshot file and what the build said about it."""

    path: Path
    warnings: list[Problem]
    compiled: bool  # some list index was compiled (False: every index came from the cache)
    seconds: float
    overlay_expiry: float | None = None  # when the next overlay entry stops applying


@dataclass(slots=True)
class _Compiled:
    snapshot: PolicySnapshot
    index_paths: dict[str, Path | None]
    lists: list[ListInput]
    compiled: bool
    overlay_expiry: float | None


def compile_policy(path: Path | str, now: float | None = None) -> PolicySnapshot:
    """Validate the policy, read its lists (through the index cache) and assemble the snapshot
    in this process; raises `PolicyError` with every problem found. Overlay entries apply as
    of `now` (Unix time; the clock by default)."""
    return _compile(Path(path), persist=False, now=now).snapshot


def build_snapshot(path: Path | str, now: float | None = None) -> Built:
    """Compile the policy once, check its own `expect` samples, and write the snapshot file
    every serving process maps. Raises `PolicyError` (every problem) on a policy that must not
    go live; OSError when the index cache cannot be written. `now`: as for `compile_policy`
    (the supervisor passes the time of the reload)."""
    started = time.perf_counter()
    done = _compile(Path(path), persist=True, now=now)
    snap = done.snapshot
    failures = snap.check_expectations()
    if failures:
        raise PolicyError(
            [Problem(snap.source, 1, 1, f"policy expectations failed: {f}") for f in failures]
        )
    folder = Path(snap.cache_dir)
    if snap.own is not None:
        done.index_paths["own"] = save_index(folder, snap.own)
    out = snapshotfile.write_snapshot(snap, folder, done.index_paths)
    rules = {s["id"]: s["rules"] for s in snap.sources}
    for item in done.lists:
        if not item.stale:
            lastgood.keep(folder, item.source.id, item.path, item.digest, rules[item.source.id])
    snapshotfile.prune(folder, out)
    seconds = time.perf_counter() - started
    return Built(out, list(snap.warnings), done.compiled, seconds, done.overlay_expiry)


def _compile(path: Path, *, persist: bool, now: float | None) -> _Compiled:
    started = time.perf_counter()
    spec, sources, settings = policy_sources(path, now)
    table = _safesearch(spec)
    index_plan = plan(spec)
    cache_dir = settings.dir / INDEX_CACHE
    warnings: list[Problem] = list(spec.warnings)
    lists = _inputs(sources, cache_dir, warnings, str(path))
    return _assemble(
        spec, table, index_plan, lists, cache_dir, settings.min_keep_ratio, warnings, persist,
        started,
    )  # fmt: skip


def policy_sources(
    path: Path, now: float | None = None
) -> tuple[PolicySpec, list[Source], ListsSettings]:
    """The validated policy (overlay entries as of `now`, the clock by default), every list
    source it uses (mandated ones included) and its lists settings; raises `PolicyError` with
    every problem found."""
    catalogue = load_catalogue()
    categories = frozenset(catalogue.categories) | {MANDATED}
    try:
        doc = load_yaml(path)
        services = load_services()
    except ConfigError as exc:
        raise PolicyError(exc.problems) from None
    except CatalogueError as exc:
        raise PolicyError([Problem(str(path), 1, 1, str(exc))]) from None
    when = time.time() if now is None else now
    spec, problems = read_policy(
        doc, categories, _read_overlay, _read_lines, now=when, services=services
    )
    if spec is None:
        raise PolicyError(problems)
    index_plan = plan(spec)
    base = path.parent
    try:
        sources = resolve_sources(catalogue, index_plan.lists_section, base, {*index_plan.used,
                                  MANDATED})  # fmt: skip
        settings = lists_settings(spec.lists, base)
    except CatalogueError as exc:
        raise PolicyError([Problem(str(path), *spec.lists_at, f"lists: {exc}")]) from None
    return spec, sources, settings


def _assemble(
    spec: PolicySpec,
    table: SafeSearchTable,
    index_plan: IndexPlan,
    lists: list[ListInput],
    cache_dir: Path,
    keep_ratio: float,
    warnings: list[Problem],
    persist: bool,
    started: float,
) -> _Compiled:
    main = cached_index(
        cache_dir,
        index_plan.bits,
        [item for item in lists if item.source.category != MANDATED],
        required=persist,
    )
    summaries = list(main.summaries)
    paths: dict[str, Path | None] = {"index": main.path, "mandated": None, "own": None}
    mandated_lists = [item for item in lists if item.source.category == MANDATED]
    mandated = None
    compiled = main.compiled
    if mandated_lists:
        built = cached_index(cache_dir, {MANDATED: 0}, mandated_lists, required=persist)
        mandated, paths["mandated"] = built.index, built.path
        summaries += built.summaries
        compiled = compiled or built.compiled
    snapshot = assemble(
        spec,
        safesearch=table,
        plan=index_plan,
        index=main.index,
        mandated=mandated,
        summaries=summaries,
        warnings=warnings,
        cache_dir=str(cache_dir),
        keep_ratio=keep_ratio,
        compile_seconds=time.perf_counter() - started,
    )
    return _Compiled(snapshot, paths, lists, compiled, spec.overlay_expiry)


def _read_overlay(path: Path) -> Document | None:
    """The overlay of approved unblocks; a missing file is normal (no approvals yet)."""
    return load_yaml(path) if path.exists() else None


def load_safesearch(path: Path = SAFESEARCH_PATH) -> SafeSearchTable:
    """Read and check a safe-search data file; raises `ConfigError` with file:line:column."""
    return read_safesearch(load_yaml(path))


def _read_lines(path: Path) -> Iterator[str]:
    """The lines of a policy's `clients.networks_file` (a million subscriber prefixes), read as
    they are used, never all at once."""
    with path.open(encoding="utf-8", errors="replace") as lines:
        yield from lines


def _safesearch(spec: PolicySpec) -> SafeSearchTable:
    try:
        return load_safesearch(spec.safesearch or SAFESEARCH_PATH)
    except ConfigError as exc:
        raise PolicyError(exc.problems) from None


def _inputs(
    sources: list[Source], cache_dir: Path, warnings: list[Problem], policy: str
) -> list[ListInput]:
    """The lists to compile, each with the digest of its bytes. A list whose file is missing or
    unreadable is read from its last good copy when it served before (a loud warning); one that
    never served is left out with one warning naming all such lists."""
    out: list[ListInput] = []
    never: list[str] = []
    for source in sources:
        path = Path(source.local_path)
        try:
            if not source.present or not path.is_file():
                raise FileNotFoundError(f"{path}: no such file")
            out.append(ListInput(source, path, digest(path)))
            continue
        except OSError as exc:
            why = exc.strerror or str(exc)
        kept = lastgood.recall(cache_dir, source.id)
        if kept is None:
            never.append(source.id)
            continue
        out.append(ListInput(source, kept.path, kept.digest, stale=True))
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(kept.kept_at))
        warnings.append(
            Problem(
                str(path), 1, 1,
                f"LIST MISSING: {source.id!r} ({source.category}) cannot be read ({why}); "
                f"serving its last good copy ({kept.rules} rules, kept {when}) until it is "
                "back",
                "warning",
            )
        )  # fmt: skip
    if never:
        warnings.append(
            Problem(
                policy,
                1,
                1,
                f"{len(never)} lists not fetched yet ({', '.join(never)}); the curated core "
                "lists serve until `safe-resolver lists update` runs",
                "warning",
            )
        )
    return out
