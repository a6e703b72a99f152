"""A real resolver for the school admin flows: two classes, three accounts, a movable clock.

Classes 10a1 and 10a2 ask from their own loopback addresses. Both block `social`; a lesson
schedule that is always on blocks `video`. The admin listener has a users file (an admin, a
teacher of 10a1, a viewer) and `require_login: true`, so even loopback needs a login (or the
token). The query log is on, so the audit trail is there to read. Overlay entries expire by the
server's expiry clock, which `SAFE_RESOLVER_CLOCK_OFFSET_FILE` moves (resolver/expiry.py).
The fixtures are here, not in a conftest, so the browser tests (tests/browser) can import them.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import dns.message
import dns.query
import pytest
import yaml
from support.authority import Authority
from support.resolver_proc import ResolverFactory, ResolverProc, free_port
from support.waiting import wait_for

from resolver.expiry import CLOCK_OFFSET_ENV
from resolver.http.users import User, hash_password, write_users
from resolver.store.sqlite import SqliteRequestStore

TZ = "Asia/Ho_Chi_Minh"
TOKEN = "script-token-0123456789"
PASSWORDS = {"hieu": "admin password 1", "lan": "teacher password 1", "minh": "viewer password 1"}
CLASSES = {"10a1": "127.0.10.1", "10a2": "127.0.10.2"}
ALLOWED = "192.0.2.200"  # what the test authority answers for *.w.example.org
BLOCKPAGE = "127.0.0.9"
SOCIAL = "social.w.example.org"
VIDEO = "video.w.example.org"
BANNED = "banned.w.example.org"


@dataclass
class School:
    rp: ResolverProc
    folder: Path
    admin_port: int
    clock_file: Path
    sessions: dict[str, Api] = field(default_factory=dict)

    def as_user(self, user: str) -> Api:
        """`user` logged in once per server (logins are limited to 10 a minute per address)."""
        if user not in self.sessions:
            self.sessions[user] = Api(self, user)
        return self.sessions[user]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def overlay(self) -> Path:
        return self.folder / "overlay.yaml"

    @property
    def db(self) -> Path:
        return self.folder / "querylog.sqlite"

    def move_clock(self, seconds: float) -> None:
        """The server's expiry clock runs `seconds` ahead of the real one from now on."""
        self.clock_file.write_text(f"{seconds}\n")

    def reload(self) -> None:
        """SIGHUP, and wait for the new generation (it re-arms the expiry timer)."""
        before = self.generation()
        self.rp.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: self.generation() > before, "the SIGHUP reload")

    def generation(self) -> int:
        return int(Api(self, token=True).get("/api/v1/status")[1]["policy_generation"])

    def audit(self, kind: str = "overlay") -> list[dict[str, Any]]:
        """The audit rows of `kind` written so far (the query log writes within a second)."""
        with sqlite3.connect(self.db) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM audit_log WHERE kind = ? ORDER BY id", (kind,))
            return [dict(row) for row in rows]


def ask(school: School, name: str, profile: str) -> str:
    """The first A record `profile`'s class gets for `name`."""
    q = dns.message.make_query(name, "A")
    reply = dns.query.udp(
        q, school.rp.host, port=school.rp.port, timeout=3, source=CLASSES[profile]
    )
    return next(str(rd) for rrset in reply.answer for rd in rrset)


def request_unblock(school: School, host: str, profile: str) -> int:
    """An unblock request as the block page stores it (the same database file)."""
    store = SqliteRequestStore(school.db)
    try:
        request_id = store.add_unblock(host, profile, "social", "for the lesson")
    finally:
        store.close()
    assert request_id is not None
    return request_id


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


class Api:
    """The admin API over HTTP as one user (a cookie jar), the token, or nobody."""

    def __init__(self, school: School, user: str | None = None, token: bool = False) -> None:
        self.school = school
        self.headers = {"Authorization": f"Bearer {TOKEN}"} if token else {}
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(CookieJar()), _NoRedirect()
        )
        if user is not None:
            status, _ = self.login(user, PASSWORDS[user])
            assert status == 303, f"login {user}: {status}"

    def login(self, user: str, password: str) -> tuple[int, Any]:
        return self.call("POST", "/login", form={"user": user, "password": password})

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data, head = None, {**self.headers, **(headers or {})}
        if body is not None:
            data, head["Content-Type"] = json.dumps(body).encode(), "application/json"
        elif form is not None:
            data = urlencode(form).encode()
            head["Content-Type"] = "application/x-www-form-urlencoded"
        req = urllib.request.Request(self.school.base + path, data, head, method=method)
        try:
            with self.opener.open(req, timeout=30) as resp:
                return resp.status, _decode(resp.read(), resp.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, _decode(exc.read(), exc.headers)

    def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        return self.call("POST", path, body=body)


def _decode(raw: bytes, headers: Any) -> Any:
    if "json" in headers.get("Content-Type", ""):
        return json.loads(raw)
    return raw.decode("utf-8", "replace")


def write_school(folder: Path) -> tuple[Path, dict[str, Any]]:
    """The policy, its lists and the users file; the server config overrides."""
    for category, name in (("social", SOCIAL), ("video", VIDEO)):
        (folder / f"{category}.txt").write_text(name + "\n")
    (folder / "mandated.txt").write_text(BANNED + "\n")
    policy = {
        "version": 1,
        "timezone": TZ,
        "clients": {"default": "10a2", "networks": {f"{ip}/32": p for p, ip in CLASSES.items()}},
        "profiles": {
            p: {"age": "unrestricted", "block": ["social"], "schedules": ["lesson"]}
            for p in CLASSES
        },
        "schedules": {"lesson": {"windows": ["00:00-24:00"], "block": ["video"]}},
        "mandated": {
            "sources": [{"id": "gov", "path": str(folder / "mandated.txt"), "format": "domains"}]
        },
        "lists": {
            "dir": "lists",
            "catalogue_sources": False,
            "sources": [
                {
                    "id": f"test-{c}",
                    "category": c,
                    "path": str(folder / f"{c}.txt"),
                    "format": "domains",
                }
                for c in ("social", "video")
            ],
        },
        "overlay": "overlay.yaml",
    }
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    write_users(
        folder / "users.yaml",
        [
            User("hieu", "admin", (), hash_password(PASSWORDS["hieu"])),
            User("lan", "teacher", ("10a1",), hash_password(PASSWORDS["lan"])),
            User("minh", "viewer", (), hash_password(PASSWORDS["minh"])),
        ],
    )
    admin_port = free_port()
    overrides = {
        "policy": str(path),
        "blockpage": {"address": [BLOCKPAGE]},
        "admin": {
            "listen": [f"127.0.0.1:{admin_port}"],
            "token": TOKEN,
            "users_file": str(folder / "users.yaml"),
            "require_login": True,
        },
        "querylog": {"enabled": True, "path": str(folder / "querylog.sqlite")},
    }
    return path, overrides


@pytest.fixture(scope="module")
def school_server(
    _session_authority: Authority, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[School]:
    folder = tmp_path_factory.mktemp("school")
    clock = folder / "clock-offset"
    clock.write_text("0\n")
    _, overrides = write_school(folder)
    factory = ResolverFactory(folder)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CLOCK_OFFSET_ENV, str(clock))
        rp = factory([_session_authority.address], **overrides)
    yield School(rp, folder, int(overrides["admin"]["listen"][0].rsplit(":", 1)[1]), clock)
    problems = factory.stop_all()
    if problems:
        pytest.fail("\n\n".join(problems))


@pytest.fixture(name="school")
def school_fixture(school_server: School) -> Iterator[School]:
    """The module's server; after each test its clock is back at the real time and the
    overlay entries the test left are revoked."""
    yield school_server
    school_server.move_clock(0)
    admin = Api(school_server, token=True)
    for entry in admin.get("/api/v1/overlay")[1]["entries"]:
        admin.call("DELETE", f"/api/v1/overlay/{entry['id']}")
