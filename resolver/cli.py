"""The `safe-resolver` command line: one parser, each subcommand handled by its own module.

Subcommand modules are imported only when chosen, so `safe-resolver check` never loads the
DNS server and `serve` is the only path that installs uvloop.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> "module:function"; each takes the parsed namespace and returns an exit code.
HANDLERS: dict[str, str] = {
    "serve": "resolver.app:serve_command",
    "serve-worker": "resolver.worker:worker_command",
    "check": "resolver.commands.policy:check_command",
    "explain": "resolver.commands.policy:explain_command",
    "policy test": "resolver.commands.policy:policy_test_command",
    "lists update": "resolver.commands.lists:update_command",
    "lists compile": "resolver.commands.policy:compile_command",
    "report": "resolver.commands.report:report_command",
    "purge": "resolver.commands.report:purge_command",
    "audit": "resolver.commands.report:audit_command",
    "bundle make": "resolver.commands.bundle:make_command",
    "bundle verify": "resolver.commands.bundle:verify_command",
    "version": "resolver.commands.version:version_command",
    "user add": "resolver.commands.users:add_command",
    "user passwd": "resolver.commands.users:passwd_command",
    "user remove": "resolver.commands.users:remove_command",
    "user list": "resolver.commands.users:list_command",
    "ca init": "resolver.commands.ca:init_command",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="safe-resolver",
        description="Content-filtering DNS resolver for schools and ISPs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the DNS resolver (and its HTTP listeners)")
    serve.add_argument("--config", metavar="FILE", help="server YAML (listeners, upstreams, ...)")
    serve.add_argument(
        "--listen", action="append", metavar="ADDR:PORT", help="UDP+TCP listener (repeatable)"
    )
    serve.add_argument(
        "--upstream", action="append", metavar="ADDR[:PORT]", help="upstream server (repeatable)"
    )
    serve.add_argument("--policy", metavar="FILE", help="policy YAML (overrides the config)")
    serve.add_argument("--blockpage-listen", action="append", metavar="ADDR:PORT")
    serve.add_argument("--admin-listen", action="append", metavar="ADDR:PORT")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--workers", metavar="N|auto", help="DNS worker processes (auto: one per CPU)"
    )
    for kind, what in (
        ("dot", "DNS over TLS"),
        ("doh", "DNS over HTTPS"),
        ("doq", "DNS over QUIC"),
    ):
        serve.add_argument(
            f"--{kind}-listen", action="append", metavar="ADDR:PORT", help=f"{what} (repeatable)"
        )
    serve.add_argument("--tls-cert", metavar="FILE", help="certificate (PEM) for DoT/DoH/DoQ")
    serve.add_argument("--tls-key", metavar="FILE", help="its private key (PEM)")
    serve.add_argument(
        "--proxy-protocol-from", action="append", metavar="CIDR",
        help="load balancer whose PROXY v2 headers are accepted (repeatable)",
    )  # fmt: skip
    worker = sub.add_parser("serve-worker")  # started by `serve` only, never by hand
    worker.add_argument("--control-fd", type=int, required=True)

    check = sub.add_parser("check", help="validate a policy file and report every problem")
    check.add_argument("policy", metavar="POLICY")
    check.add_argument("--json", action="store_true", help="machine-readable output")

    explain = sub.add_parser("explain", help="why is this name blocked (or not) for this client?")
    explain.add_argument("--policy", required=True, metavar="POLICY")
    explain.add_argument("--client", default="127.0.0.1", metavar="IP")
    explain.add_argument(
        "--device", metavar="NAME", help="as this device asks (its encrypted-DNS identity)"
    )
    explain.add_argument("--at", metavar="ISO-8601", help="evaluate at this time (default: now)")
    explain.add_argument("--type", default="A", metavar="QTYPE")
    explain.add_argument("--json", action="store_true")
    explain.add_argument("name", metavar="NAME")

    policy = sub.add_parser("policy", help="policy tools").add_subparsers(
        dest="policy_command", required=True, metavar="SUBCOMMAND"
    )
    ptest = policy.add_parser("test", help="check a policy against a table of expectations")
    ptest.add_argument("policy", metavar="POLICY")
    ptest.add_argument("expectations", metavar="EXPECTATIONS.yaml")
    ptest.add_argument("--json", action="store_true")

    lists = sub.add_parser("lists", help="blocklist tools").add_subparsers(
        dest="lists_command", required=True, metavar="SUBCOMMAND"
    )
    update = lists.add_parser("update", help="fetch the policy's list sources, keep last good")
    update.add_argument("--policy", metavar="POLICY", help="policy whose sources to fetch")
    update.add_argument("--config", metavar="FILE", help="server YAML naming the policy")
    update.add_argument("--lists-dir", metavar="DIR", help="where fetched lists are kept")
    update.add_argument("--quiet", action="store_true", help="no progress display")
    compile_ = lists.add_parser("compile", help="compile a policy's lists into the snapshot cache")
    compile_.add_argument("--policy", required=True, metavar="POLICY")

    report = sub.add_parser("report", help="the report for the authorities, from the roll-ups")
    report.add_argument("--period", metavar="2026-H1|2026", help="a year, half, quarter or month")
    report.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="first day")
    report.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last day (inclusive)")
    report.add_argument("--profile", metavar="PROFILE")
    report.add_argument("--format", choices=["csv", "html", "json"], default="json")
    report.add_argument("--top", type=int, default=100, metavar="N", help="most blocked domains")
    report.add_argument("--db", metavar="FILE", help="query-log database (default from config)")
    report.add_argument("--config", metavar="FILE")
    report.add_argument(
        "--output", "-o", metavar="FILE", help="write here (and FILE.sha256) instead of stdout"
    )

    purge = sub.add_parser("purge", help="delete raw query-log rows (never roll-ups or audit)")
    purge.add_argument("--db", metavar="FILE")
    purge.add_argument("--config", metavar="FILE")
    purge.add_argument("--older-than", type=int, metavar="DAYS")
    purge.add_argument("--all", action="store_true", help="delete every raw query-log row")

    audit = sub.add_parser(
        "audit", help="the audit trail: reloads, mandated list versions, approvals and pauses"
    )
    audit.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD")
    audit.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD")
    audit.add_argument("--json", action="store_true")
    audit.add_argument("--verify", metavar="FILE", help="was this report made by this server?")
    audit.add_argument("--tz", default="Asia/Ho_Chi_Minh", metavar="ZONE", help="times shown in")
    audit.add_argument("--db", metavar="FILE")
    audit.add_argument("--config", metavar="FILE")
    bundle = sub.add_parser("bundle", help="policy bundles for many servers").add_subparsers(
        dest="bundle_command", required=True, metavar="SUBCOMMAND"
    )
    make = bundle.add_parser("make", help="check a policy and pack it with its files")
    make.add_argument("--policy", required=True, metavar="POLICY")
    make.add_argument("--key", metavar="KEY.pem", help="Ed25519 private key to sign with")
    make.add_argument("--version", default="", metavar="LABEL", help="default: the UTC time")
    make.add_argument("-o", "--output", required=True, metavar="BUNDLE.tar.gz")
    verify = bundle.add_parser("verify", help="verify a bundle as a resolver would")
    verify.add_argument("bundle", metavar="BUNDLE.tar.gz")
    verify.add_argument("--public-key", metavar="KEY", help="PEM file or base64 raw key")
    verify.add_argument("--sha256", metavar="HEX", help="the pinned sha256 of the file")

    version = sub.add_parser("version", help="the version and the UDP path `serve` would use")
    version.add_argument("--config", metavar="FILE", help="server YAML (its udp and workers)")
    version.add_argument("--workers", metavar="N|auto", help="as `serve --workers`")
    user = sub.add_parser("user", help="dashboard accounts (admin.users_file)").add_subparsers(
        dest="user_command", required=True, metavar="SUBCOMMAND"
    )
    for name, what in (("add", "add a user"), ("passwd", "set a user's password"),
                       ("remove", "remove a user"), ("list", "list the users")):  # fmt: skip
        cmd = user.add_parser(name, help=what)
        where = cmd.add_mutually_exclusive_group()
        where.add_argument("--file", metavar="USERS.yaml", help="the users file")
        where.add_argument("--config", metavar="FILE", help="server YAML naming admin.users_file")
        if name != "list":
            cmd.add_argument("name", metavar="NAME")
        if name in ("add", "passwd"):
            cmd.add_argument("--password-stdin", action="store_true",
                             help="read the password from standard input (one line)")  # fmt: skip
        if name == "add":
            cmd.add_argument("--role", required=True, choices=["admin", "teacher", "viewer"])
            cmd.add_argument("--profile", action="append", default=[], metavar="PROFILE",
                             help="a teacher's profile (repeatable)")  # fmt: skip
    ca = sub.add_parser("ca", help="the school CA for the HTTPS block page").add_subparsers(
        dest="ca_command", required=True, metavar="SUBCOMMAND"
    )
    ca_init = ca.add_parser("init", help="make the CA (key readable by the service user only)")
    ca_init.add_argument(
        "--config", metavar="FILE", help="server YAML (blockpage.ca, organisation)"
    )
    ca_init.add_argument("--dir", metavar="DIR", help="the CA folder (default: blockpage.ca)")
    ca_init.add_argument("--name", metavar="TEXT", help="shown on devices (default: organisation)")
    ca_init.add_argument("--force", action="store_true", help="replace an existing CA")
    return parser


def _handler_key(args: argparse.Namespace) -> str:
    if args.command == "policy":
        return f"policy {args.policy_command}"
    if args.command == "lists":
        return f"lists {args.lists_command}"
    if args.command == "bundle":
        return f"bundle {args.bundle_command}"
    if args.command == "user":
        return f"user {args.user_command}"
    if args.command == "ca":
        return f"ca {args.ca_command}"
    return str(args.command)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, func_name = HANDLERS[_handler_key(args)].split(":")
    handler = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
