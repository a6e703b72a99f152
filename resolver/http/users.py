"""Dashboard accounts: a YAML file of users, each with a role and (teachers) her profiles.

    users:
      - name: lan
        role: teacher            # admin | teacher | viewer
        profiles: [10a1, 10a2]   # teachers only: the profiles she acts for
        password_hash: "$argon2id$v=19$m=65536,t=3,p=4$..."

`safe-resolver user add|passwd|remove|list` writes it; it may be edited by hand, and every
mistake comes back as file:line:column. Passwords are kept only as argon2id hashes made by
argon2-cffi, with at least OWASP's minimum cost (19 MiB, 2 passes): any other format (bcrypt,
SHA-2, MD5-crypt, plain text, argon2i/argon2d or a cheaper argon2id) is refused, so a weak hash
cannot come in by a hand edit.

The running server re-reads the file when it changes (`UserTable`): a user added, removed or
given a new password counts from the next request, without a restart.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

from resolver.fileio import atomic_write
from resolver.yamlsource import Checker, ConfigError, Document, load_yaml, suggest

log = logging.getLogger(__name__)
ROLES = ("admin", "teacher", "viewer")
USER_KEYS = ("name", "role", "profiles", "password_hash")
# A login name: letters, digits and . _ @ - (an e-mail address works); the names the server
# uses for itself in the audit trail are taken.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
RESERVED = frozenset({"token", "loopback", "expiry"})
MIN_MEMORY_KIB = 19 * 1024  # OWASP's argon2id minimum: m=19 MiB, t=2
MIN_TIME_COST = 2
MIN_PASSWORD = 10  # characters
HEADER = (
    "# safe-resolver dashboard users: `safe-resolver user add|passwd|remove|list`.\n"
    "# Roles: admin (everything), teacher (requests, pauses and the query log of her\n"
    "# profiles), viewer (dashboard and reports, read-only). Hashes: argon2id only.\n"
)
HASHER = PasswordHasher()  # argon2-cffi's defaults: argon2id, 64 MiB, 3 passes
# Verified when the name is unknown, so that a wrong name takes as long as a wrong password.
_DUMMY = HASHER.hash("no such user")


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    profiles: tuple[str, ...]  # a teacher's; empty for admin and viewer (they see every one)
    password_hash: str


def hash_password(password: str) -> str:
    """A new argon2id hash of `password`; ValueError when it is too short."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password needs {MIN_PASSWORD} characters or more")
    return HASHER.hash(password)


def verify_password(user: User | None, password: str) -> bool:
    """True when `password` is `user`'s. Slow on purpose (argon2): call it in a thread."""
    try:
        return HASHER.verify(user.password_hash if user else _DUMMY, password) and bool(user)
    except (VerificationError, InvalidHashError):
        return False


def hash_problem(text: str) -> str | None:
    """Why `text` is not an acceptable password hash, or None."""
    try:
        params = extract_parameters(text)
    except (InvalidHashError, ValueError):
        return (
            f"password_hash is not an argon2id hash ({_kind_of(text)}): set it with "
            "`safe-resolver user passwd`"
        )
    if params.type is not Type.ID:
        return f"password_hash is argon2{params.type.name.lower()}, not argon2id"
    if params.memory_cost < MIN_MEMORY_KIB or params.time_cost < MIN_TIME_COST:
        return (
            f"password_hash is too cheap (m={params.memory_cost}, t={params.time_cost}; at least "
            f"m={MIN_MEMORY_KIB}, t={MIN_TIME_COST}): set it with `safe-resolver user passwd`"
        )
    return None


KNOWN_HASHES = (
    ("$2", "a bcrypt hash"),
    ("$1$", "an MD5-crypt hash"),
    ("$5$", "a SHA-256-crypt hash"),
    ("$6$", "a SHA-512-crypt hash"),
    ("$argon2", "a malformed argon2 hash"),
    ("pbkdf2", "a PBKDF2 hash"),
)


def _kind_of(text: str) -> str:
    for prefix, kind in KNOWN_HASHES:
        if text.startswith(prefix):
            return kind
    if re.fullmatch(r"[0-9a-fA-F]{32,128}", text):
        return "a bare hex digest"
    return "it looks like plain text or an unknown format"


def read_users(doc: Document, *, check_hashes: bool = True) -> dict[str, User]:
    """The users of a loaded users file; raises ConfigError with every problem. Without
    `check_hashes` a weak hash passes (`user passwd` must be able to replace one)."""
    check = Checker(doc)
    root = check.mapping((), doc.data, ("users",))
    rows = root.get("users") or []
    out: dict[str, User] = {}
    if not check.type_ok(("users",), rows, list):
        rows = []
    for i, row in enumerate(rows):
        at = ("users", i)
        row = check.mapping(at, row, USER_KEYS, required=["name", "role", "password_hash"])
        name = row.get("name")
        if "name" in row and not (isinstance(name, str) and NAME.fullmatch(name)):
            check.error((*at, "name"), f"bad user name {name!r}: letters, digits and . _ @ -")
            continue
        if name in RESERVED:
            check.error((*at, "name"), f"{name!r} is a name the server uses for itself")
        elif name in out:
            check.error((*at, "name"), f"user {name!r} is listed twice")
        role = row.get("role")
        if "role" in row and role not in ROLES:
            check.error((*at, "role"), f"role must be one of {', '.join(ROLES)}, not {role!r}"
                        f"{suggest(str(role), ROLES)}")  # fmt: skip
        profiles = check.str_list((*at, "profiles"), row.get("profiles"))
        if role == "teacher" and not profiles:
            check.error(at, f"teacher {name!r} needs `profiles`: the profiles she acts for")
        elif role in ("admin", "viewer") and profiles:
            check.error((*at, "profiles"), f"profiles are for teachers; a {role} sees them all")
        hashed = row.get("password_hash")
        if "password_hash" in row and check_hashes:
            problem = hash_problem(hashed) if isinstance(hashed, str) else "must be a string"
            if problem:
                check.error((*at, "password_hash"), problem)
        if isinstance(name, str) and isinstance(role, str) and isinstance(hashed, str):
            out[name] = User(name, role, tuple(profiles), hashed)
    if not check.ok:
        raise ConfigError(check.problems)
    return out


def load_users(path: Path, *, check_hashes: bool = True) -> dict[str, User]:
    """Read the users file ({} when it does not exist yet); ConfigError with file:line:column."""
    if not path.exists():
        return {}
    return read_users(load_yaml(path), check_hashes=check_hashes)


def write_users(path: Path, users: list[User]) -> None:
    """Replace the users file atomically, readable by its owner only (it holds hashes)."""
    import yaml

    rows: list[dict[str, Any]] = []
    for user in users:
        row: dict[str, Any] = {"name": user.name, "role": user.role}
        if user.profiles:
            row["profiles"] = list(user.profiles)
        row["password_hash"] = user.password_hash
        rows.append(row)
    text = HEADER + yaml.safe_dump({"users": rows}, allow_unicode=True, sort_keys=False)
    atomic_write(path, text.encode("utf-8"))
    os.chmod(path, 0o600)


class UserTable:
    """The users file as the server sees it: read again when it changes on disk (looked at
    at most once a second). A broken edit keeps the users read last, and says so in the log."""

    RECHECK = 1.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self._users = load_users(path)  # a broken file at start: ConfigError, no start
        self._seen = self._stamp()
        self._checked = time.monotonic()

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def get(self, name: str) -> User | None:
        now = time.monotonic()
        if now - self._checked >= self.RECHECK:
            self._checked = now
            stamp = self._stamp()
            if stamp != self._seen:
                self._seen = stamp
                try:
                    self._users = load_users(self.path)
                except ConfigError as exc:
                    log.error("users file not reloaded, keeping the last good one:\n%s", exc)
        return self._users.get(name)


def password_stamp(user: User) -> str:
    """A short digest of `user`'s password hash: a session made before the password changed
    (or before the user was removed and added again) no longer matches."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]
