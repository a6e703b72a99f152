"""Admin commands on policy files: check, explain, policy test, lists compile.

Each prints plain text for people or, with `--json`, one JSON document for scripts, and returns
the exit code: 0 fine, 1 problems found (errors, failed samples), 2 unusable input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from resolver.lists.reader import read_list
from resolver.policy.compile import PolicyError, compile_policy
from resolver.policy.decide import check_sample, decide
from resolver.policy.decision import Decision
from resolver.policy.schema import parse_time, qtype_number, read_expectations
from resolver.policy.snapshot import PolicySnapshot
from resolver.yamlsource import Checker, ConfigError, Problem, load_yaml


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        print(problem)


def check_command(args: argparse.Namespace) -> int:
    """Validate the policy (schema, then a full compile) and print every problem."""
    snapshot = None
    try:
        snapshot = compile_policy(args.policy)
        problems = snapshot.warnings
    except PolicyError as exc:
        problems = exc.problems
    failures = snapshot.check_expectations() if snapshot else []
    errors = [p for p in problems if p.severity == "error"]
    if args.json:
        print(json.dumps({
            "ok": not errors and not failures,
            "problems": [p.as_dict() for p in problems],
            "expect_failures": failures,
            "profiles": snapshot.profile_ids if snapshot else [],
            "list_sizes": snapshot.list_sizes if snapshot else {},
        }, indent=2))  # fmt: skip
    else:
        _print_problems(problems)
        for failure in failures:
            print(f"expect failed: {failure}")
        if not errors and not failures:
            assert snapshot is not None
            print(
                f"{args.policy}: OK ({len(snapshot.profiles)} profiles, "
                f"{sum(snapshot.list_sizes.values())} rules, {len(problems)} warnings)"
            )
        else:
            print(
                f"{args.policy}: {len(errors)} errors, {len(failures)} failed samples",
                file=sys.stderr,
            )
    return 1 if errors or failures else 0


def _compile_or_report(path: str) -> PolicySnapshot | None:
    try:
        return compile_policy(path)
    except PolicyError as exc:
        _print_problems(exc.problems)
        return None


def _list_line(snapshot: PolicySnapshot, decision: Decision) -> int | None:
    """The rule's line in its list file (slow: re-reads the file)."""
    if decision.source is None or decision.rule is None:
        return None
    for src in snapshot.sources:
        if src["path"] == decision.source:
            for entry in read_list(src["path"], src["format"]).entries:
                if entry.name == decision.rule:
                    return entry.line
    return None


def explain_command(args: argparse.Namespace) -> int:
    snapshot = _compile_or_report(args.policy)
    if snapshot is None:
        return 2
    qtype = qtype_number(args.type)
    if qtype is None:
        print(f"unknown query type {args.type!r}", file=sys.stderr)
        return 2
    when = datetime.now(snapshot.timezone)
    if args.at:
        parsed = parse_time(args.at, snapshot.timezone)
        if isinstance(parsed, str):
            print(parsed, file=sys.stderr)
            return 2
        when = parsed
    name = args.name.lower().rstrip(".")
    profile = snapshot.profile_object(args.client)
    state = profile.compute_state(when.timestamp())
    decision = decide(snapshot, args.client, name, qtype, when)
    line = _list_line(snapshot, decision)
    report: dict[str, Any] = {
        "client": args.client,
        "name": name,
        "type": args.type.upper(),
        "at": when.isoformat(),
        "profile": profile.id,
        "schedules_active": list(state.active),
        "internet_off": state.internet_off,
        "safe_search": {"search": state.search, "youtube": state.youtube},
        "action": decision.action.value,
        "tier": decision.tier.value,
        "category": decision.category,
        "block_mode": decision.block_mode.value,
        "target": decision.target,
        "rule": decision.rule,
        "source": decision.source,
        "line": line,
        "ttl": decision.ttl,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"client   {args.client} -> profile {profile.id}")
    print(
        f"time     {report['at']}; schedules active: {', '.join(state.active) or 'none'}"
        f"{'; internet OFF' if state.internet_off else ''}"
    )
    print(f"query    {name} {report['type']}")
    print(
        f"decision {decision.action.value} (tier {decision.tier.value}"
        f"{', category ' + decision.category if decision.category else ''})"
    )
    if decision.target:
        print(f"target   {decision.target}")
    if decision.rule:
        where = f"{decision.source}:{line}" if line else decision.source
        print(f"rule     {decision.rule} ({where})")
    return 0


def _load_expectations(path: str, snapshot: PolicySnapshot) -> list | None:
    try:
        doc = load_yaml(path)
    except ConfigError as exc:
        _print_problems(exc.problems)
        return None
    check = Checker(doc)
    rows, at = doc.data, ()
    if isinstance(rows, dict):
        check.mapping((), rows, ["expect"])
        rows, at = rows.get("expect"), ("expect",)
    samples = read_expectations(check, at, rows, snapshot.timezone)
    if not check.ok:
        _print_problems(check.problems)
        return None
    return samples


def policy_test_command(args: argparse.Namespace) -> int:
    snapshot = _compile_or_report(args.policy)
    if snapshot is None:
        return 2
    samples = _load_expectations(args.expectations, snapshot)
    if samples is None:
        return 2
    results = [(sample, check_sample(snapshot, sample)) for sample in samples]
    failed = sum(1 for _, msg in results if msg)
    if args.json:
        print(json.dumps({
            "passed": len(results) - failed,
            "failed": failed,
            "rows": [{"where": s.where, "client": s.client, "name": s.name, "expect": s.action,
                      "ok": not msg, "message": msg} for s, msg in results],
        }, indent=2))  # fmt: skip
    else:
        for sample, msg in results:
            status = "FAIL" if msg else "pass"
            detail = f"  {msg}" if msg else ""
            print(f"{status}  {sample.client:<16} {sample.name:<32} {sample.action:<8}{detail}")
        print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def compile_command(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    snapshot = _compile_or_report(args.policy)
    if snapshot is None:
        return 2
    _print_problems(snapshot.warnings)
    for category, size in sorted(snapshot.list_sizes.items()):
        print(f"{category:<16} {size:>10} rules")
    total = sum(snapshot.list_sizes.values())
    print(
        f"{total} rules in {len(snapshot.sources)} lists, {len(snapshot.profiles)} profiles; "
        f"compiled in {time.perf_counter() - started:.2f} s "
        f"(index cache: {Path(snapshot.cache_dir)})"
    )
    return 0
