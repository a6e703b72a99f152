"""What the admin app and its dashboard pages share: the app's configuration and request keys.

A module of its own so that `admin` (the API) and `dashboard` (the pages) both import it and
not each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry

from resolver.http.ports import ResolverControl
from resolver.http.security import RateLimiter
from resolver.http.sessions import SessionStore
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
    login_limiter: RateLimiter
    sessions: SessionStore


CONFIG = web.AppKey("admin_config", AdminConfig)
# How this request got in: "token", "session", "loopback", or "" (the open /login form).
ACCESS = web.RequestKey("admin_access", str)
