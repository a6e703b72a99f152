"""The query-log search's filters, read from the query string of `GET /api/v1/querylog`.

The API's first filters (since, until, client, qname, profile, action, category, limit) and the
dashboard's search page's (qtype, contains, offset) in one place, each checked: a bad value is a
400 with a message, never a database error. `client` is an address (matched under the current
pseudonym key) or a pseudonym as the log shows it (`resolver.store.querylog.QueryLog.search`).
"""

from __future__ import annotations

from aiohttp import web

from resolver.http.params import int_param, time_param
from resolver.store.base import SEARCH_LIMIT_MAX, SEARCH_OFFSET_MAX, QueryFilter
from resolver.store.events import ACTIONS

MAX_TEXT = 253  # a name's length: longer search text cannot match


def query_filter(request: web.Request) -> QueryFilter:
    """The search criteria of this request; ValueError (a 400) for a bad parameter."""
    q = request.query
    for key in ("client", "qname", "profile", "category", "contains"):
        if len(q.get(key, "")) > MAX_TEXT:
            raise ValueError(f"{key}: at most {MAX_TEXT} characters")
    action = q.get("action") or None
    if action is not None and action not in ACTIONS:
        raise ValueError(f"action: one of {', '.join(ACTIONS)}")
    qtype = q.get("qtype") or None
    if qtype is not None and not (qtype.isascii() and qtype.isalnum() and len(qtype) <= 10):
        raise ValueError(f"qtype: unknown query type {qtype[:20]!r}")
    return QueryFilter(
        since=time_param(request, "since"),
        until=time_param(request, "until"),
        client=q.get("client") or None,
        qname=q.get("qname") or None,
        profile=q.get("profile") or None,
        action=action,
        category=q.get("category") or None,
        limit=int_param(request, "limit", 100, 1, SEARCH_LIMIT_MAX),
        qtype=qtype.upper() if qtype else None,
        name_contains=q.get("contains") or None,
        offset=int_param(request, "offset", 0, 0, SEARCH_OFFSET_MAX),
    )
