"""The admin app: JSON API, Prometheus `/metrics` and the dashboard, for the admin listener.

Access (checked by one middleware before any route):
- a request carrying `Authorization: Bearer <token>` that matches the configured token
  (constant-time compare) is allowed from anywhere;
- a browser that logged in on `/login` with the token carries a session cookie (a random id
  the server keeps in memory, `resolver.http.sessions`: it expires, logout revokes it;
  HttpOnly, SameSite=Strict, and Secure when the listener is HTTPS) and is allowed from anywhere;
- without either, only a loopback peer is allowed, and only with a loopback Host header
  (`localhost`, `127.0.0.1`, `[::1]`): a DNS-rebinding page cannot borrow the loopback pass;
- everything else gets 401 (token configured) or 403 (no token: loopback only).
The peer is the TCP peer: put no proxy in front that makes every request look local.

State-changing requests without a bearer token (the dashboard) must be same-origin: a browser
`Origin` other than this app's own, or `Sec-Fetch-Site: cross-site`, gets 403 (CSRF).
Every route is documented in `openapi.yaml` (served at `/openapi.yaml`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime
from importlib import resources
from typing import Any

from aiohttp import web

from resolver.http import metrics
from resolver.http.admin_keys import ACCESS, CONFIG, SESSION_COOKIE, AdminConfig
from resolver.http.dashboard import setup_dashboard
from resolver.http.devices import setup_devices
from resolver.http.i18n import category_label
from resolver.http.logsearch import query_filter
from resolver.http.params import int_param as _int_param
from resolver.http.params import json_error as _error
from resolver.http.params import request_store as _store
from resolver.http.params import time_param as _time_param
from resolver.http.ports import ResolverControl
from resolver.http.security import RateLimiter, add_security_headers, is_loopback
from resolver.http.sessions import SessionStore
from resolver.stats import LATENCY_BUCKETS, Stats
from resolver.store.base import RequestStore, StoreUnavailable
from resolver.store.querylog import QueryLog

API = "/api/v1"
MAX_BODY = 64 * 1024
# Reachable without auth: the login form, and logout (so an expired session can still clear
# its cookie; the same-origin check below still applies to both posts).
OPEN_PATHS = frozenset({"/login", "/logout"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
CSP_ADMIN = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
OPENAPI_TEXT = resources.files("resolver.http").joinpath("openapi.yaml").read_bytes()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_admin_app(
    control: ResolverControl,
    *,
    token: str | None,
    store: RequestStore | None,
    querylog: QueryLog | None,
    sessions: SessionStore | None = None,
) -> web.Application:
    """The admin app (API + metrics + dashboard). `token=None`: loopback-only access.

    `sessions` defaults to 8-hour logins that end after 30 minutes unused.
    """
    app = web.Application(client_max_size=MAX_BODY, middlewares=[access_middleware])
    app[CONFIG] = AdminConfig(
        control=control,
        token=token or None,
        store=store,
        querylog=querylog,
        registry=metrics.make_registry(control.stats),
        login_limiter=RateLimiter(limit=10, window=60.0),
        sessions=sessions if sessions is not None else SessionStore(8 * 3600, idle_timeout=1800),
    )
    app.on_response_prepare.append(add_security_headers(CSP_ADMIN))
    r = app.router
    r.add_get(f"{API}/health", health)
    r.add_get(f"{API}/status", status)
    r.add_post(f"{API}/reload", reload)
    r.add_get(f"{API}/explain", explain)
    r.add_post(f"{API}/cache/flush", cache_flush)
    r.add_get(f"{API}/stats", stats)
    r.add_get(f"{API}/querylog", querylog_search)
    r.add_get(f"{API}/querylog/summary", querylog_summary)
    r.add_get(f"{API}/unblock-requests", unblock_list)
    r.add_post(f"{API}/unblock-requests/{{id:\\d+}}/approve", unblock_approve)
    r.add_post(f"{API}/unblock-requests/{{id:\\d+}}/reject", unblock_reject)
    r.add_get("/metrics", metrics_endpoint)
    r.add_get("/openapi.yaml", openapi)
    setup_dashboard(app)
    setup_devices(app)
    return app


# -- access control ---------------------------------------------------------------------------


def _bearer_ok(request: web.Request, token: str | None) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _host_name(request: web.Request) -> str:
    host = request.headers.get("Host", "")
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def access_kind(request: web.Request) -> str | None:
    """ "token", "session", "loopback", or None when the request may not pass."""
    cfg = request.app[CONFIG]
    if _bearer_ok(request, cfg.token):
        return "token"
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if cfg.token and cookie and cfg.sessions.check(cookie):
        return "session"
    host = _host_name(request).lower()
    if is_loopback(request.remote) and (host in LOOPBACK_HOSTS or is_loopback(host)):
        return "loopback"
    return None


def _same_origin(request: web.Request) -> bool:
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    cfg = request.app[CONFIG]
    kind = access_kind(request)
    if kind is None and request.path not in OPEN_PATHS:
        if cfg.token:
            return web.json_response(
                {"error": "authentication required"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="safe-resolver"'},
            )
        return web.json_response({"error": "admin access is limited to loopback"}, status=403)
    if request.method not in ("GET", "HEAD") and kind != "token" and not _same_origin(request):
        return web.json_response({"error": "cross-origin request refused"}, status=403)
    request[ACCESS] = kind or ""
    return await handler(request)


# -- helpers ----------------------------------------------------------------------------------


def stats_json(s: Stats) -> dict[str, Any]:
    """The counters as JSON: totals by action, category, profile and transport, and the rest."""
    by: dict[str, defaultdict[str, int]] = {
        k: defaultdict(int) for k in ("action", "category", "profile", "transport", "qtype")
    }
    total = 0
    for (transport, qtype, action, profile, category), n in list(s.queries.items()):
        total += n
        by["action"][action] += n
        by["profile"][profile] += n
        by["transport"][transport] += n
        by["qtype"][qtype] += n
        if action == "blocked" and category:
            by["category"][category] += n
    cumulative, buckets = 0, {}
    for bound, count in zip((*LATENCY_BUCKETS, float("inf")), s.latency_buckets, strict=True):
        cumulative += count
        buckets["+Inf" if bound == float("inf") else repr(bound)] = cumulative
    categories = set(by["category"]) | set(s.list_sizes)
    return {
        "time": time.time(),
        "uptime": time.time() - s.started,
        "queries": {"total": total} | {f"by_{k}": dict(v) for k, v in by.items()},
        "latency": {"count": s.latency_count, "sum": s.latency_sum, "buckets": buckets},
        "cache": {
            "hits": s.cache_hits,
            "misses": s.cache_misses,
            "stale_served": s.cache_stale_served,
            "size": s.cache_size,
        },
        "upstreams": [
            {
                "address": u.address,
                "healthy": u.healthy,
                "queries": u.queries,
                "errors": u.errors,
                "timeouts": u.timeouts,
                "latency_avg_ms": (u.latency_sum / u.latency_count * 1000)
                if u.latency_count
                else None,
            }
            for u in list(s.upstreams.values())
        ],
        "lists": [
            {"category": c, "rules": s.list_sizes.get(c, 0), "updated": s.list_updated.get(c)}
            for c in sorted(s.list_sizes)
        ],
        "category_names": {
            c: {lg: category_label(c, lg) for lg in ("vi", "en")} for c in categories
        },
        "mandated_hits": s.mandated_hits,
        "reloads": {
            "count": s.reloads,
            "failures": s.reload_failures,
            "last_seconds": s.reload_seconds_last,
            "last_error": s.reload_last_error,
            "generation": s.policy_generation,
        },
        "querylog": {"written": s.querylog_written, "dropped": s.querylog_dropped},
        "malformed": dict(s.malformed),
        "dropped": dict(s.dropped),
        "http": {
            "connections": dict(s.http_connections),
            "closed": [
                {"listener": listener, "reason": reason, "count": count}
                for (listener, reason), count in list(s.http_closed.items())
            ],
            "bad_requests": dict(s.http_bad_requests),
        },
    }


# -- handlers ---------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def status(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    features = {"querylog": cfg.querylog is not None, "requests": cfg.store is not None}
    return web.json_response(cfg.control.status() | {"features": features})


async def reload(request: web.Request) -> web.Response:
    accept_shrink = request.query.get("accept_shrink", "") in ("1", "true", "yes")
    result = await request.app[CONFIG].control.reload(accept_shrink)
    return web.json_response(result, status=200 if result.get("ok") else 422)


async def explain(request: web.Request) -> web.Response:
    q = request.query
    client, name = q.get("client", ""), q.get("name", "")
    if not client or not name:
        return _error("client and name are required")
    try:
        at_ts = _time_param(request, "at")
        at = datetime.fromtimestamp(at_ts).astimezone() if at_ts is not None else None
        result = await request.app[CONFIG].control.explain(client, name, q.get("type", "A"), at)
    except ValueError as exc:
        return _error(str(exc))
    return web.json_response(result)


async def cache_flush(request: web.Request) -> web.Response:
    name = request.query.get("name")
    if request.can_read_body and request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            return _error("body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("name", ""), str | None):
            return _error('expected {"name": "example.org"} or {}')
        name = body.get("name") or name
    flushed = await request.app[CONFIG].control.flush_cache(name or None)
    return web.json_response({"flushed": flushed, "name": name or None})


async def stats(request: web.Request) -> web.Response:
    control = request.app[CONFIG].control
    await control.refresh_stats()
    return web.json_response(stats_json(control.stats()))


async def querylog_search(request: web.Request) -> web.Response:
    log = request.app[CONFIG].querylog
    if log is None:
        return _error("the query log is disabled", 404)
    try:
        flt = query_filter(request)
    except ValueError as exc:
        return _error(str(exc))
    try:
        rows = await asyncio.to_thread(log.search, flt)
    except StoreUnavailable:
        return _error("the query-log database is unreachable", 503)
    more = len(rows) == flt.limit  # a full page: the next one may hold more
    return web.json_response(
        {
            "rows": rows,
            "clients": log.clients,
            "next_offset": flt.offset + len(rows) if more else None,
        }
    )


async def querylog_summary(request: web.Request) -> web.Response:
    log = request.app[CONFIG].querylog
    if log is None:
        return _error("the query log is disabled", 404)
    try:
        hours = _int_param(request, "hours", 24, 1, 24 * 366)
        top = _int_param(request, "top", 10, 1, 100)
    except ValueError as exc:
        return _error(str(exc))
    until = time.time()
    try:
        summary = await asyncio.to_thread(
            log.summary, until - hours * 3600, until, request.query.get("profile") or None, top
        )
    except StoreUnavailable:
        return _error("the query-log database is unreachable", 503)
    return web.json_response({"hours": hours} | dataclasses.asdict(summary))


async def unblock_list(request: web.Request) -> web.Response:
    state = request.query.get("status", "pending")
    if state not in ("pending", "approved", "rejected", "all"):
        return _error("status: pending, approved, rejected or all")
    rows = await asyncio.to_thread(_store(request).list_unblock, None if state == "all" else state)
    return web.json_response({"requests": rows})


async def _decide(request: web.Request, approve: bool) -> web.Response:
    store = _store(request)
    request_id = int(request.match_info["id"])
    row = await asyncio.to_thread(store.get_unblock, request_id)
    if row is None:
        return _error("no such request", 404)
    if row["status"] != "pending":
        return _error(f"request is already {row['status']}", 409)
    if approve:
        note = f"unblock request #{request_id}" + (f": {row['note']}" if row["note"] else "")
        try:
            request.app[CONFIG].control.add_overlay_allow(row["profile"], row["host"], note)
        except ValueError as exc:
            return _error(str(exc))
    new_status = "approved" if approve else "rejected"
    decided_by = request.get(ACCESS) or "admin"
    if not await asyncio.to_thread(store.set_unblock_status, request_id, new_status, decided_by):
        return _error("request was decided meanwhile", 409)
    return web.json_response(await asyncio.to_thread(store.get_unblock, request_id))


async def unblock_approve(request: web.Request) -> web.Response:
    return await _decide(request, approve=True)


async def unblock_reject(request: web.Request) -> web.Response:
    return await _decide(request, approve=False)


async def metrics_endpoint(request: web.Request) -> web.Response:
    await request.app[CONFIG].control.refresh_stats()
    body = metrics.render(request.app[CONFIG].registry)
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=OPENAPI_TEXT, content_type="application/yaml")
