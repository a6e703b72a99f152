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
from typing import cast

from resolver.build.compile import compile_policy
from resolver.build.listfile import rule_line
from resolver.build.trial import check_policy
from resolver.policy.compile import PolicyError
from resolver.policy.decide import check_sample
from resolver.policy.explain import explain_report
from resolver.policy.schema import Expectation, parse_time, read_expectations
from resolver.policy.snapshot import PolicySnapshot
from resolver.yamlsource import Checker, ConfigError, Problem, load_yaml


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        print(problem)


def check_command(args: argparse.Namespace) -> int:
    """Validate the policy (schema, then a full compile) and print every problem."""
    snapshot, problems, failures = check_policy(args.policy)
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


def explain_command(args: argparse.Namespace) -> int:
    snapshot = _compile_or_report(args.policy)
    if snapshot is None:
        return 2
    when = datetime.now(snapshot.timezone)
    if args.at:
        parsed = parse_time(args.at, snapshot.timezone)
        if isinstance(parsed, str):
            print(parsed, file=sys.stderr)
            return 2
        when = parsed
    try:
        report = explain_report(
            snapshot, args.client, args.name, args.type, when, rule_line, args.device
        )
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    r = report
    if r["device"]:
        print(f"device   {r['device']} -> profile {r['profile']}")
    else:
        print(f"client   {r['client']} -> profile {r['profile']}")
    print(
        f"time     {r['at']}; schedules active: {', '.join(r['schedules_active']) or 'none'}"
        f"{'; internet OFF' if r['internet_off'] else ''}"
    )
    print(f"query    {r['name']} {r['type']}")
    why = f", category {r['category']}" if r["category"] else ""
    if r["service"]:
        why = f", service {r['service']} ({r['service_name']['en']})"
    print(f"decision {r['action']} (tier {r['tier']}{why})")
    if r["target"]:
        print(f"target   {r['target']}")
    if r["rule"]:
        where = f"{r['source']}:{r['line']}" if r["line"] else r["source"]
        print(f"rule     {r['rule']} ({where})")
    return 0


def _load_expectations(path: str, snapshot: PolicySnapshot) -> list[Expectation] | None:
    try:
        doc = load_yaml(path)
    except ConfigError as exc:
        _print_problems(exc.problems)
        return None
    check = Checker(doc)
    rows, at = doc.data, cast(tuple[str, ...], ())
    if isinstance(rows, dict):
        check.mapping((), rows, ["expect"])
        rows, at = rows.get("expect"), ("expect",)
    samples = read_expectations(check, at, rows, snapshot.timezone, snapshot.devices)
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
            "rows": [{"where": s.where, "client": s.client, "device": s.device, "name": s.name,
                      "expect": s.action, "ok": not msg, "message": msg} for s, msg in results],
        }, indent=2))  # fmt: skip
    else:
        for sample, msg in results:
            status = "FAIL" if msg else "pass"
            detail = f"  {msg}" if msg else ""
            who = f"device:{sample.device}" if sample.device else sample.client
            print(f"{status}  {who:<16} {sample.name:<32} {sample.action:<8}{detail}")
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
