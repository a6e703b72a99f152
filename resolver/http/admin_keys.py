"""What the admin app and its dashboard pages share: the app's configuration and request keys.

A module of its own so that `admin` (the API) and `dashboard` (the pages) both import it and
not each other.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry

from resolver.http.ports import ResolverControl
from resolver.http.roles import Principal
from resolver.http.security import RateLimiter
from resolver.http.sessions import SessionStore
from resolver.http.users import UserTable
from resolver.store.base import RequestStore
from resolver.store.querylog import QueryLog

SESSION_COOKIE = "sr_session"


@dataclass(frozen=True, slots=True)
class AdminConfig:
    control: ResolverControl
    token: str | None
    store: RequestStore | None
    querylog: QueryLog | None
    registry: CollectorRegistry
    login_limiter: RateLimiter  # login attempts per client address
    sessions: SessionStore
    users: UserTable | None = None  # `admin.users_file`
    require_login: bool = False  # `admin.require_login`: loopback needs credentials too
    user_failures: RateLimiter = field(default_factory=lambda: RateLimiter(10, 900.0))
    logins: Counter[str] = field(default_factory=Counter)  # login attempts by result (metrics)


CONFIG = web.AppKey("admin_config", AdminConfig)
# How this request got in: "token", "session", "loopback", or "" (the open /login form).
ACCESS = web.RequestKey("admin_access", str)
# Who is asking, with her role (None only on the open /login and /logout).
PRINCIPAL = web.RequestKey("admin_principal", Principal)
