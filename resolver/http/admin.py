"""The admin app: JSON API, Prometheus `/metrics` and the dashboard, for the admin listener.

Who is asking (checked by one middleware before any route):
- `Authorization: Bearer <token>` matching `admin.token` (constant-time compare): admin, from
  anywhere (scripts);
- a session cookie from `/login` (`resolver.http.login`: a user of `admin.users_file`, or the
  admin token): that user, with her role, from anywhere. The cookie is a random id the server
  keeps in memory (`resolver.http.sessions`: it expires, logout revokes it; HttpOnly,
  SameSite=Strict, and Secure when the listener is HTTPS); a session ends when its user is
  removed or gets a new password;
- without either, a loopback peer with a loopback Host header (`localhost`, `127.0.0.1`,
  `[::1]`) is admin (a local operator; a DNS-rebinding page cannot borrow the pass), unless
  `admin.require_login: true`;
- anyone else: a browser asking for a page is sent to `/login` (303), an API client gets 401
  JSON (or 403 when no token or users file is configured: loopback only).
Then the role table (`resolver.http.roles.ROUTE_ROLES`) decides (403 JSON if not allowed), and
the handlers narrow a teacher to her profiles. The peer is the TCP peer: put no proxy in front
that makes every request look local.

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
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from importlib import resources
from typing import Any, cast
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import web
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from resolver.http import metrics
from resolver.http.admin_keys import ACCESS, CONFIG, PRINCIPAL, SESSION_COOKIE, AdminConfig
from resolver.http.dashboard import setup_dashboard
from resolver.http.devices import setup_devices
from resolver.http.i18n import category_label
from resolver.http.login import setup_login
from resolver.http.logsearch import query_filter
from resolver.http.params import int_param as _int_param
from resolver.http.params import json_error as _error
from resolver.http.params import request_store as _store
from resolver.http.params import time_param as _time_param
from resolver.http.ports import ResolverControl
from resolver.http.roles import ADMIN, Principal, allowed, permissions
from resolver.http.security import RateLimiter, add_security_headers, is_loopback
from resolver.http.sessions import Session, SessionStore
from resolver.http.users import UserTable, password_stamp
from resolver.stats import LATENCY_BUCKETS, Stats
from resolver.store.audit import record_overlay
from resolver.store.base import RequestStore, StoreUnavailable
from resolver.store.overlay import OverlayEntry, new_entry, until_from
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
    users: UserTable | None = None,
    require_login: bool = False,
) -> web.Application:
    """The admin app (API + metrics + dashboard). Without `token` and `users`: loopback-only
    access. `sessions` defaults to 8-hour logins that end after 30 minutes unused.
    """
    app = web.Application(client_max_size=MAX_BODY, middlewares=[access_middleware])
    cfg = app[CONFIG] = AdminConfig(
        control=control,
        token=token or None,
        store=store,
        querylog=querylog,
        registry=metrics.make_registry(control.stats),
        login_limiter=RateLimiter(limit=10, window=60.0),
        sessions=sessions if sessions is not None else SessionStore(8 * 3600, idle_timeout=1800),
        users=users,
        require_login=require_login,
    )
    cfg.registry.register(LoginCounts(cfg))
    app.on_response_prepare.append(add_security_headers(CSP_ADMIN))
    r = app.router
    r.add_get(f"{API}/health", health)
    r.add_get(f"{API}/me", me)
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
    r.add_get(f"{API}/overlay", overlay_list)
    r.add_delete(f"{API}/overlay/{{id:[0-9a-f]{{1,16}}}}", overlay_revoke)
    r.add_post(f"{API}/pauses", pause_create)
    r.add_get("/metrics", metrics_endpoint)
    r.add_get("/openapi.yaml", openapi)
    setup_dashboard(app)
    setup_devices(app)
    setup_login(app)
    return app


class LoginCounts(Collector):
    """`safe_resolver_admin_logins_total{result}`: ok, wrong_password, unknown_user,
    wrong_token, rate_limited."""

    def __init__(self, cfg: AdminConfig) -> None:
        self.cfg = cfg

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            metrics.P + "admin_logins", "Dashboard log-in attempts by result", labels=["result"]
        )
        for result, count in sorted(self.cfg.logins.items()):
            family.add_metric([result], count)
        yield family


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


def principal_of(request: web.Request) -> Principal | None:
    """Who is asking (see the module docstring), or None: not let in."""
    cfg = request.app[CONFIG]
    if _bearer_ok(request, cfg.token):
        return Principal("token", ADMIN, None, "token")
    cookie = request.cookies.get(SESSION_COOKIE, "")
    session = cfg.sessions.get(cookie) if cookie else None
    if session is not None:
        who = _session_user(cfg, session)
        if who is not None:
            return who
        cfg.sessions.revoke(cookie)
    host = _host_name(request).lower()
    local = is_loopback(request.remote) and (host in LOOPBACK_HOSTS or is_loopback(host))
    if local and not cfg.require_login:
        return Principal("loopback", ADMIN, None, "loopback")
    return None


def _session_user(cfg: AdminConfig, session: Session) -> Principal | None:
    """The session's user as she is now; None when she is gone or has a new password."""
    if session.user == "token":  # "token" is no user name (users.RESERVED)
        return Principal("token", ADMIN, None, "session") if cfg.token else None
    user = cfg.users.get(session.user) if cfg.users is not None else None
    if user is None or password_stamp(user) != session.stamp:
        return None
    profiles = frozenset(user.profiles) if user.role == "teacher" else None
    return Principal(user.name, user.role, profiles, "session")


def _same_origin(request: web.Request) -> bool:
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin == "null" and site == "same-origin":
        return True  # a form post under our `Referrer-Policy: no-referrer`: Chromium sends "null"
    return origin is None or origin == f"{request.scheme}://{request.host}"


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    cfg = request.app[CONFIG]
    who = principal_of(request)
    open_path = request.path in OPEN_PATHS
    if who is None and not open_path:
        return _unauthenticated(request, cfg)
    by_token = who is not None and who.via == "token"
    if request.method not in ("GET", "HEAD") and not by_token and not _same_origin(request):
        return web.json_response({"error": "cross-origin request refused"}, status=403)
    resource = request.match_info.route.resource
    if (
        who is not None
        and not open_path
        and resource is not None
        and not allowed(who.role, request.method, resource.canonical)
    ):
        return _error(f"a {who.role} may not use {request.method} {request.path}", 403)
    if who is not None:
        request[PRINCIPAL] = who
    request[ACCESS] = who.via if who else ""
    return await handler(request)


def _unauthenticated(request: web.Request, cfg: AdminConfig) -> web.StreamResponse:
    """A browser asking for a page goes to the log-in form; an API client gets JSON."""
    if not (cfg.token or cfg.users or cfg.require_login):
        return web.json_response({"error": "admin access is limited to loopback"}, status=403)
    if request.method in ("GET", "HEAD") and "text/html" in request.headers.get("Accept", ""):
        # `&` escaped: the page's own query string comes back whole after the login.
        raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='/?=')}")
    return web.json_response(
        {"error": "authentication required"},
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="safe-resolver"'},
    )


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
        profiles = _profiles_asked(request, flt.profile)
        if len(profiles) != 1:  # a teacher's own profiles, all of them (or she has none)
            flt = dataclasses.replace(flt, profile=None, profiles=tuple(p for p in profiles if p))
    except ValueError as exc:
        return _error(str(exc))
    except PermissionError as exc:
        return _error(str(exc), 403)
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


def _profiles_asked(request: web.Request, asked: str | None) -> list[str | None]:
    """The profiles a query-log read covers: the one asked for ([None]: every profile); a
    teacher's own profiles when she names none. PermissionError for another's profile."""
    mine = request[PRINCIPAL].profiles
    if mine is None:
        return [asked]
    if asked is None:
        return [*sorted(mine)]
    if asked not in mine:
        raise PermissionError(f"profile {asked!r} is not one of yours")
    return [asked]


async def querylog_summary(request: web.Request) -> web.Response:
    log = request.app[CONFIG].querylog
    if log is None:
        return _error("the query log is disabled", 404)
    try:
        hours = _int_param(request, "hours", 24, 1, 24 * 366)
        top = _int_param(request, "top", 10, 1, 100)
    except ValueError as exc:
        return _error(str(exc))
    try:
        profiles = _profiles_asked(request, request.query.get("profile") or None)
    except PermissionError as exc:
        return _error(str(exc), 403)
    if len(profiles) > 1:
        return _error(f"profile: one of {', '.join(str(p) for p in profiles)}")
    until = time.time()
    try:
        summary = await asyncio.to_thread(
            log.summary, until - hours * 3600, until, profiles[0], top
        )
    except StoreUnavailable:
        return _error("the query-log database is unreachable", 503)
    return web.json_response({"hours": hours} | dataclasses.asdict(summary))


async def me(request: web.Request) -> web.Response:
    """Who is logged in, her role and profiles, and the routes she may call."""
    who = request[PRINCIPAL]
    profiles = sorted(who.profiles) if who.profiles is not None else None
    return web.json_response({"user": who.name, "role": who.role, "profiles": profiles,
                              "via": who.via, "permissions": permissions(who.role)})  # fmt: skip


async def unblock_list(request: web.Request) -> web.Response:
    state = request.query.get("status", "pending")
    if state not in ("pending", "approved", "rejected", "all"):
        return _error("status: pending, approved, rejected or all")
    rows = await asyncio.to_thread(_store(request).list_unblock, None if state == "all" else state)
    who = request[PRINCIPAL]
    return web.json_response({"requests": [r for r in rows if who.may_act_for(r["profile"])]})


async def _body(request: web.Request) -> dict[str, Any]:
    """A JSON object or a urlencoded form ({} without a body); ValueError if malformed.
    (`body_exists`, not `can_read_body`: the connection guard has read the body already.)"""
    if not request.body_exists:
        return {}
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise ValueError("body is not JSON") from None
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        return body
    return dict(await request.post())


def _audit(request: web.Request, action: str, detail: str, entry: OverlayEntry | None) -> None:
    log = request.app[CONFIG].querylog
    if log is None:
        return
    category = entry.target if entry and entry.target_kind == "category" else None
    record_overlay(log, action, request[PRINCIPAL].name, detail,
                   entry_id=entry.id if entry else None, category=category)  # fmt: skip


async def _decide(request: web.Request, approve: bool) -> web.Response:
    store = _store(request)
    cfg, who = request.app[CONFIG], request[PRINCIPAL]
    request_id = int(request.match_info["id"])
    row = await asyncio.to_thread(store.get_unblock, request_id)
    if row is None:
        return _error("no such request", 404)
    if not who.may_act_for(row["profile"]):
        return _error(f"request #{request_id} is for profile {row['profile']!r}, not yours", 403)
    if row["status"] != "pending":
        return _error(f"request is already {row['status']}", 409)
    out: dict[str, Any] = {}
    entry = None
    if approve:
        note = f"unblock request #{request_id}" + (f": {row['note']}" if row["note"] else "")
        try:
            body = await _body(request)
            now = cfg.control.policy_now()
            until = until_from(body.get("minutes"), body.get("until"), now)
            entry = new_entry("allow", row["profile"], "name", row["host"], until=until,
                              now=now.timestamp(), note=note, by=who.name,
                              request=request_id)  # fmt: skip
            out["reload"] = await cfg.control.overlay_add(entry)
        except ValueError as exc:
            return _error(str(exc))
        out["entry"] = entry.as_json(_zone(now))
    new_status = "approved" if approve else "rejected"
    if not await asyncio.to_thread(store.set_unblock_status, request_id, new_status, who.name):
        return _error("request was decided meanwhile", 409)
    if entry is not None:
        _audit(request, "approved", entry.describe(_zone(now)), entry)
    else:
        detail = f"profile {row['profile']}: unblock request #{request_id} for {row['host']}"
        _audit(request, "rejected", detail, None)
    decided = await asyncio.to_thread(store.get_unblock, request_id)
    return web.json_response((decided or {}) | out)


def _zone(now: datetime) -> ZoneInfo:
    return cast(ZoneInfo, now.tzinfo)


async def unblock_approve(request: web.Request) -> web.Response:
    """Approve for `{"minutes": N}` or `{"until": "today" | DATE | TIME | "permanent"}`."""
    return await _decide(request, approve=True)


async def unblock_reject(request: web.Request) -> web.Response:
    return await _decide(request, approve=False)


async def overlay_list(request: web.Request) -> web.Response:
    """The approvals and pauses in force (a teacher: hers), soonest to end first."""
    control, who = request.app[CONFIG].control, request[PRINCIPAL]
    kind = request.query.get("kind")
    if kind not in (None, "allow", "pause"):
        return _error("kind: allow or pause")
    try:
        entries = await control.overlay_entries()
    except ValueError as exc:
        return _error(str(exc))
    now = control.policy_now()
    shown = [e for e in entries if who.may_act_for(e.profile) and kind in (None, e.kind)]
    shown.sort(key=lambda e: (e.until is None, e.until or 0.0))
    return web.json_response({"entries": [e.as_json(_zone(now)) for e in shown],
                              "now": now.timestamp(), "timezone": _zone(now).key})  # fmt: skip


async def overlay_revoke(request: web.Request) -> web.Response:
    """End an approval or a pause now."""
    control, who = request.app[CONFIG].control, request[PRINCIPAL]
    entry_id = request.match_info["id"]
    try:
        found = [e for e in await control.overlay_entries() if e.id == entry_id]
        if found and not who.may_act_for(found[0].profile):
            return _error(f"that entry is for profile {found[0].profile!r}, not yours", 403)
        removed = await control.overlay_remove(entry_id) if found else None
    except ValueError as exc:
        return _error(str(exc))
    if removed is None:
        return _error("no such entry (it may have ended already)", 404)
    entry, reload_result = removed
    zone = _zone(control.policy_now())
    _audit(request, "revoked", entry.describe(zone), entry)
    return web.json_response({"entry": entry.as_json(zone), "reload": reload_result})


async def pause_create(request: web.Request) -> web.Response:
    """`{"profile": "10a1", "category" | "service" | "name": ..., "minutes": 45}` (or
    `"until"` as for approvals; a pause always ends): let it through for that profile."""
    control, who = request.app[CONFIG].control, request[PRINCIPAL]
    try:
        body = await _body(request)
        profile = body.get("profile")
        targets = [k for k in ("category", "service", "name") if body.get(k)]
        if not isinstance(profile, str) or len(targets) != 1:
            raise ValueError("give a profile and one of category, service or name")
        target = body[targets[0]]
        if not isinstance(target, str):
            raise ValueError(f"{targets[0]} must be a string")
        if not who.may_act_for(profile):
            return _error(f"profile {profile!r} is not one of yours", 403)
        now = control.policy_now()
        until = until_from(body.get("minutes"), body.get("until"), now, permanent_ok=False)
        note = body.get("note")
        entry = new_entry("pause", profile, targets[0], target, until=until, now=now.timestamp(),
                          note=note if isinstance(note, str) else "", by=who.name)  # fmt: skip
        reload_result = await control.overlay_add(entry)
    except ValueError as exc:
        return _error(str(exc))
    _audit(request, "paused", entry.describe(_zone(now)), entry)
    return web.json_response(
        {"entry": entry.as_json(_zone(now)), "reload": reload_result}, status=201
    )


async def metrics_endpoint(request: web.Request) -> web.Response:
    await request.app[CONFIG].control.refresh_stats()
    body = metrics.render(request.app[CONFIG].registry)
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=OPENAPI_TEXT, content_type="application/yaml")
