"""Reading the admin API's query parameters and answering its errors: shared by the API
(`resolver.http.admin`) and the dashboard's endpoints, which import it and not each other."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from resolver.http.admin_keys import CONFIG
from resolver.store.base import RequestStore


def json_error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


def time_param(request: web.Request, key: str) -> float | None:
    """A unix time or an ISO-8601 time from the query string; ValueError if malformed."""
    text = request.query.get(key)
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(f"{key}: expected unix time or ISO-8601, got {text[:40]!r}") from None


def int_param(request: web.Request, key: str, default: int, low: int, high: int) -> int:
    text = request.query.get(key)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{key}: expected an integer in {low}..{high}")
    return int(text)


def request_store(request: web.Request) -> RequestStore:
    """The unblock-request and content-report store; 404 when none is configured."""
    store = request.app[CONFIG].store
    if store is None:
        raise web.HTTPNotFound(
            text='{"error": "no request store configured"}', content_type="application/json"
        )
    return store
