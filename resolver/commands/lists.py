"""`safe-resolver lists update`: fetch the policy's list sources, keeping the last good copies."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import yaml

from resolver.lists.catalogue import (
    CatalogueError,
    lists_settings,
    load_catalogue,
    resolve_sources,
)
from resolver.update.progress import LineProgress
from resolver.update.runner import update_sources


def update_command(args: argparse.Namespace) -> int:
    """Exit 0 when every source is good, 1 when any failed (the others are still updated),
    2 when the policy or catalogue cannot be used at all."""
    try:
        policy = _policy_path(args)
        section = _lists_section(policy)
        if args.lists_dir:
            section = {**section, "dir": str(Path(args.lists_dir).resolve())}
        base_dir = policy.parent
        settings = lists_settings(section, base_dir)
        sources = resolve_sources(load_catalogue(), section, base_dir)
    except (CatalogueError, OSError, yaml.YAMLError, ValueError) as exc:
        print(f"safe-resolver lists update: {exc}", file=sys.stderr)
        return 2
    live = not args.quiet and sys.stderr.isatty()
    progress = LineProgress(sys.stderr if live else sys.stdout, live=live)
    outcomes = asyncio.run(update_sources(sources, settings, progress))
    failed = [o for o in outcomes if not o.ok]
    if failed:
        print(
            f"{len(failed)} of {len(outcomes)} sources failed: "
            + ", ".join(o.source.id for o in failed),
            file=sys.stderr,
        )
    return 1 if failed else 0


def _policy_path(args: argparse.Namespace) -> Path:
    if args.policy:
        return Path(args.policy).resolve()
    if not args.config:
        raise ValueError("give --policy POLICY or --config FILE (whose 'policy:' names it)")
    config = Path(args.config).resolve()
    data = _yaml_mapping(config)
    name = data.get("policy")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{config}: no 'policy:' key naming the policy file")
    path = Path(name)
    return path if path.is_absolute() else config.parent / path


def _lists_section(policy: Path) -> dict[str, Any]:
    section = _yaml_mapping(policy).get("lists") or {}
    if not isinstance(section, dict):
        raise ValueError(f"{policy}: 'lists:' must be a mapping")
    return section


def _yaml_mapping(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping at the top level")
    return data
