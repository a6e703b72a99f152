"""Dashboard login sessions, kept in memory on the server: they expire, and logout ends them.

A session id is 256 random bits, given to the browser once as the cookie value; the store keeps
only its SHA-256, so a lookup compares digests of equal length and a memory dump shows no usable
cookie. A session carries who logged in (a user of the users file, or "token" for a login with
the admin token) and a stamp of her password hash: the admin app ends a session whose user is
gone or has a new password (`resolver.http.admin`). A session ends `lifetime` seconds after
login, after `idle_timeout` seconds unused, on logout, or when the process restarts (everyone
logs in again). At most `max_sessions` live at
once: a new login pushes out the least recently used.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_SESSIONS = 64


@dataclass(slots=True)
class Session:
    user: str
    stamp: str  # digest of the user's password hash at login ("" for the admin token)
    created: float
    used: float


class SessionStore:
    def __init__(
        self,
        lifetime: float,
        idle_timeout: float,
        max_sessions: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifetime = lifetime
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[bytes, Session] = OrderedDict()  # least recently used first

    def __len__(self) -> int:
        return len(self._sessions)

    @staticmethod
    def _key(session_id: str) -> bytes:
        return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).digest()

    def create(self, user: str, stamp: str = "") -> str:
        """A new session for `user`; returns the id for the cookie."""
        now = self._clock()
        self._drop_idle(now)
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)
        session_id = secrets.token_urlsafe(32)
        self._sessions[self._key(session_id)] = Session(user, stamp, created=now, used=now)
        return session_id

    def get(self, session_id: str) -> Session | None:
        """The live session (it counts as used now), or None; an expired one is dropped."""
        if not session_id:
            return None
        key = self._key(session_id)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self._clock()
        if now - session.created >= self.lifetime or now - session.used >= self.idle_timeout:
            del self._sessions[key]
            return None
        session.used = now
        self._sessions.move_to_end(key)
        return session

    def revoke(self, session_id: str) -> None:
        self._sessions.pop(self._key(session_id), None)

    def _drop_idle(self, now: float) -> None:
        while self._sessions:
            session = next(iter(self._sessions.values()))
            if now - session.used < self.idle_timeout:
                return
            self._sessions.popitem(last=False)
