"""Who may call which admin route: one table, checked by the admin app before every handler.

Roles (resolver/http/users.py keeps the accounts):
- admin: everything. The bearer token (`admin.token`, for scripts) and a loopback request
  without credentials (a local operator; off with `admin.require_login: true`) are admin.
- teacher: unblock requests, pauses, the query log and the profile pages of the profiles
  assigned to her; the handlers narrow what she sees and does to those profiles
  (`Principal.may_act_for`). Not the school-wide pages: history, lists, content reports.
- viewer: the dashboard and the reports, read-only (history, query log, profiles, lists,
  content reports); not the policy editor nor the device set-up pages.

A route missing from `ROUTE_ROLES` is for admins only, so a new page is never opened by
accident; tests/school_admin/test_roles.py checks every route of the app against the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ADMIN, TEACHER, VIEWER = "admin", "teacher", "viewer"
EVERYONE = frozenset({ADMIN, TEACHER, VIEWER})
READERS = frozenset({ADMIN, VIEWER})
ACTORS = frozenset({ADMIN, TEACHER})
ADMINS = frozenset({ADMIN})

API = "/api/v1"
# (method, route as registered) -> roles allowed. HEAD goes with GET.
ROUTE_ROLES: dict[tuple[str, str], frozenset[str]] = {
    ("GET", f"{API}/health"): EVERYONE,
    ("GET", f"{API}/me"): EVERYONE,
    ("GET", f"{API}/status"): READERS,
    ("POST", f"{API}/reload"): ADMINS,
    ("GET", f"{API}/explain"): READERS,
    ("POST", f"{API}/cache/flush"): ADMINS,
    ("GET", f"{API}/stats"): READERS,
    ("GET", f"{API}/querylog"): EVERYONE,  # a teacher: her profiles' rows only
    ("GET", f"{API}/querylog/summary"): EVERYONE,  # a teacher: one of her profiles
    ("GET", f"{API}/unblock-requests"): EVERYONE,  # a teacher: her profiles' requests only
    ("POST", f"{API}/unblock-requests/{{id}}/approve"): ACTORS,  # a teacher: her profiles
    ("POST", f"{API}/unblock-requests/{{id}}/reject"): ACTORS,
    ("GET", f"{API}/overlay"): EVERYONE,  # a teacher: her profiles' entries only
    ("DELETE", f"{API}/overlay/{{id}}"): ACTORS,
    ("POST", f"{API}/pauses"): ACTORS,
    ("GET", f"{API}/content-reports"): READERS,
    ("GET", f"{API}/content-reports.csv"): READERS,
    ("POST", f"{API}/content-reports/delete"): ADMINS,
    ("GET", f"{API}/history"): READERS,
    ("GET", f"{API}/lists"): READERS,
    ("GET", f"{API}/profiles"): EVERYONE,  # a teacher: her profiles only
    ("GET", f"{API}/profiles/{{id}}"): EVERYONE,  # a teacher: her profiles only
    # The policy editor: only an admin reads the file (networks, allow lists) or changes it.
    ("GET", f"{API}/policy"): ADMINS,
    ("POST", f"{API}/policy/preview"): ADMINS,
    ("POST", f"{API}/policy"): ADMINS,
    ("POST", f"{API}/policy/undo"): ADMINS,
    ("GET", "/metrics"): READERS,
    ("GET", "/openapi.yaml"): EVERYONE,
    ("GET", "/"): EVERYONE,
    # Dashboard pages: a page is a shell, its data comes from the routes above; each page is
    # open to the roles that may read that data (the navigation shows only those).
    ("GET", "/dashboard"): EVERYONE,
    ("GET", "/dashboard/history"): READERS,
    ("GET", "/dashboard/log"): EVERYONE,  # a teacher: her profiles' rows
    ("GET", "/dashboard/profiles"): EVERYONE,
    ("GET", "/dashboard/profiles/{id}"): EVERYONE,
    ("GET", "/dashboard/lists"): READERS,
    ("GET", "/dashboard/reports"): READERS,
    ("GET", "/dashboard/policy"): ADMINS,
    ("GET", "/static/{name}"): EVERYONE,  # the pages' scripts: no data in them
    # Device set-up pages show the devices' secret tokens.
    ("GET", "/devices"): ADMINS,
    ("GET", "/devices/{name}"): ADMINS,
    ("GET", "/devices/{name}/{protocol}.mobileconfig"): ADMINS,
    ("GET", "/school-ca.crt"): EVERYONE,  # a certificate: public by nature
    # /login and /logout are open to anyone (admin.OPEN_PATHS): no role is checked.
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a user of the users file, "token" or "loopback"."""

    name: str
    role: str
    profiles: frozenset[str] | None  # a teacher's profiles; None: every profile
    via: str  # "token", "session" or "loopback"

    def may_act_for(self, profile: str) -> bool:
        return self.profiles is None or profile in self.profiles


def route_key(method: str, canonical: str) -> tuple[str, str]:
    """The table's key for a route: HEAD is GET, `{id:\\d+}` is `{id}`."""
    return ("GET" if method == "HEAD" else method, re.sub(r"\{(\w+):[^}]*\}", r"{\1}", canonical))


def allowed(role: str, method: str, canonical: str) -> bool:
    """May `role` call this route (`canonical`: the route's path as registered)?"""
    return role in ROUTE_ROLES.get(route_key(method, canonical), ADMINS)


def permissions(role: str) -> list[str]:
    """The routes `role` may call, as "METHOD /path" (for the dashboard: what to show)."""
    return sorted(f"{m} {path}" for (m, path), roles in ROUTE_ROLES.items() if role in roles)
