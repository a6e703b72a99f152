"""`safe-resolver user add|passwd|remove|list`: the dashboard accounts in `admin.users_file`.

The file is read without judging the hashes, so `passwd` can replace a weak one written by
hand; after a change the whole file is checked as the server will check it, and what the
server would still refuse is printed. Passwords come from a prompt (asked twice) or, for
scripts, one line of standard input (`--password-stdin`); they never appear in arguments.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from dataclasses import replace
from pathlib import Path

from resolver.http.users import NAME, RESERVED, User, hash_password, load_users, write_users
from resolver.yamlsource import ConfigError, load_yaml


def _users_path(args: argparse.Namespace) -> Path:
    """`--file`, or `admin.users_file` of `--config` (relative to it); ValueError if neither."""
    if args.file:
        return Path(args.file)
    if not args.config:
        raise ValueError("give --file USERS.yaml or --config FILE (naming admin.users_file)")
    doc = load_yaml(args.config)
    admin = doc.data.get("admin") if isinstance(doc.data, dict) else None
    name = admin.get("users_file") if isinstance(admin, dict) else None
    if not isinstance(name, str):
        raise ValueError(f"{args.config}: no admin.users_file")
    return Path(args.config).parent / name


def _check_new(args: argparse.Namespace, name: str, users: dict[str, User]) -> None:
    """ValueError when `user add` would write what the server refuses."""
    if name in users:
        raise ValueError(f"user {name!r} exists already (passwd changes the password)")
    if not NAME.fullmatch(name) or name in RESERVED:
        raise ValueError(f"bad user name {name!r}: letters, digits and . _ @ -, not {RESERVED}")
    if (args.role == "teacher") != bool(args.profile):
        raise ValueError("a teacher needs --profile (repeatable); admins and viewers take none")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def _run(args: argparse.Namespace, change: str) -> int:
    try:
        path = _users_path(args)
        users = load_users(path, check_hashes=False)
        name: str = getattr(args, "name", "") or ""
        if change == "list":
            for user in users.values():
                profiles = f"  {', '.join(user.profiles)}" if user.profiles else ""
                print(f"{user.name}  {user.role}{profiles}")
            return 0
        if change == "add":
            _check_new(args, name, users)
        if change != "add" and name not in users:
            raise ValueError(f"no user {name!r} in {path}")
        if change == "remove":
            del users[name]
        else:
            hashed = hash_password(_password(args))
            if change == "add":
                users[name] = User(name, args.role, tuple(args.profile), hashed)
            else:
                users[name] = replace(users[name], password_hash=hashed)
        write_users(path, list(users.values()))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"safe-resolver user {change}: {exc}", file=sys.stderr)
        return 2
    try:
        load_users(path)
    except ConfigError as exc:  # the server will refuse the file: say why, and say it loudly
        print(f"{exc}\nsafe-resolver user {change}: the server refuses {path} until these are "
              "fixed", file=sys.stderr)  # fmt: skip
        return 1
    print(f"{path}: {change} {name}: done (the server reads the change within a second)")
    return 0


def add_command(args: argparse.Namespace) -> int:
    return _run(args, "add")


def passwd_command(args: argparse.Namespace) -> int:
    return _run(args, "passwd")


def remove_command(args: argparse.Namespace) -> int:
    return _run(args, "remove")


def list_command(args: argparse.Namespace) -> int:
    return _run(args, "list")
