"""Pieces both web apps share: response headers, form tokens, per-client rate limits, peer checks.

Form tokens (CSRF): an HMAC over (issue time, bound context) with a per-process random secret,
embedded in the page that shows the form. A post is accepted only with a token this process
issued for the same context (for the block page: the same Host and client address) less than
`max_age` seconds ago. No cookie is needed, which suits a page served for any Host.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

from aiohttp import web

from resolver.netaddr import client_ip

# Content-Security-Policy for pages with no scripts: inline styles and data: images only.
CSP_NO_SCRIPT = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def add_security_headers(
    csp: str,
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An `on_response_prepare` handler: no caching, no sniffing, no framing, a strict CSP.

    A signal rather than a middleware so error responses (404, 405, 413...) get the headers too.
    """

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        h = response.headers
        h["Cache-Control"] = "no-store"
        h["X-Content-Type-Options"] = "nosniff"
        h["Referrer-Policy"] = "no-referrer"
        h["X-Frame-Options"] = "DENY"
        h.setdefault("Content-Security-Policy", csp)

    return on_prepare


class FormTokens:
    """Issue and check HMAC form tokens bound to a context string."""

    def __init__(self, max_age: float = 7200.0, secret: bytes | None = None) -> None:
        self._secret = secret or os.urandom(32)
        self.max_age = max_age

    def _mac(self, issued: int, context: str) -> str:
        msg = f"{issued}|{context}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:32]

    def issue(self, context: str, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        return f"{issued}.{self._mac(issued, context)}"

    def check(self, token: str, context: str, now: float | None = None) -> bool:
        issued_text, _, mac = token.partition(".")
        if not issued_text.isdigit() or len(issued_text) > 12:
            return False
        issued = int(issued_text)
        age = (now if now is not None else time.time()) - issued
        if not 0 <= age <= self.max_age:
            return False
        return hmac.compare_digest(mac, self._mac(issued, context))


class RateLimiter:
    """At most `limit` events per `window` seconds per key; remembers at most `max_keys` keys.

    Bounded memory: when full, the least recently seen key is forgotten (a flood from many
    addresses then resets old keys early, which errs on the side of serving the page).
    """

    def __init__(self, limit: int = 5, window: float = 600.0, max_keys: int = 4096) -> None:
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, key: str, now: float | None = None) -> bool:
        """True (and the event counts) when `key` is under its limit; False when it is not."""
        allowed = not self.full(key, now)
        if allowed:
            self.note(key, now)
        return allowed

    def full(self, key: str, now: float | None = None) -> bool:
        """Has `key` used up its events in the window? (Counts nothing: for limits on
        failures, where `note` is called only when one happens.)"""
        times = self._recent(key, now)
        return times is not None and len(times) >= self.limit

    def note(self, key: str, now: float | None = None) -> None:
        """Count one event of `key`."""
        now = now if now is not None else time.monotonic()
        times = self._recent(key, now)
        if times is None:
            times = self._seen[key] = deque()
        times.append(now)
        if len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)

    def _recent(self, key: str, now: float | None) -> deque[float] | None:
        """`key`'s events still in the window (it becomes the most recently seen key)."""
        times = self._seen.pop(key, None)
        if times is None:
            return None
        now = now if now is not None else time.monotonic()
        while times and now - times[0] >= self.window:
            times.popleft()
        self._seen[key] = times
        return times


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; False for anything unparsable."""
    ip = client_ip(address)
    return ip is not None and ip.is_loopback
