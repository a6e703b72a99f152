"""Start an aiohttp app on the resolver's own event loop, on plain and TLS addresses, guarded.

Every connection goes through `resolver.http.guard` (timeouts, per-client and total caps) and
aiohttp's parser errors through `resolver.http.errorlog` (one counted line, no traceback).
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from resolver.http.errorlog import BadRequestLog
from resolver.http.guard import ConnectionGuard, GuardedServer, listening_socket
from resolver.http.limits import HttpLimits
from resolver.stats import Stats

# aiohttp's HTTP parser limits, kept explicit: longer request lines or headers get 400.
MAX_LINE = 8190
MAX_FIELD = 8190


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side TLS context with the certificate chain loaded (OSError/SSLError if bad)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


class GuardedSite(web.BaseSite):
    """A TCP listener whose connections the guard admits and watches (see `GuardedServer`)."""

    __slots__ = ("_guard", "_host", "_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        guard: ConnectionGuard,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._guard, self._host, self._port = guard, host, port

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{scheme}://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        sock = listening_socket(self._host, self._port, self._backlog)
        self._server = GuardedServer(sock, self._guard, server, self._ssl_context)

    async def stop(self) -> None:
        await super().stop()
        self._guard.close_unattached()


async def start_http(
    app: web.Application,
    listens: Sequence[tuple[str, int]],
    *,
    tls_listens: Sequence[tuple[str, int]] = (),
    tls: ssl.SSLContext | None = None,
    name: str = "http",
    limits: HttpLimits | None = None,
    stats: Stats | None = None,
) -> web.AppRunner:
    """Serve `app` on every (host, port) of `listens`, and with `tls` on `tls_listens`; port 0
    picks a free port (`runner.addresses` lists what was bound). `name` labels the metrics.

    The caller owns the runner: `await runner.cleanup()` stops it. Raises OSError if an
    address cannot be bound (after cleaning up whatever did start).
    """
    if tls_listens and tls is None:
        raise ValueError("tls_listens needs a TLS context")
    limits = limits or HttpLimits()
    stats = stats if stats is not None else Stats()
    guard = ConnectionGuard(name, limits, stats)
    app.middlewares.insert(0, guard.middleware)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, max_line_size=MAX_LINE,
        max_field_size=MAX_FIELD, logger=BadRequestLog(name, stats),
        # Ours close first; aiohttp's own timer stays as a backstop. A body the handler did not
        # read (refused as too large or too slow) closes the connection instead of draining it.
        keepalive_timeout=limits.keepalive_timeout + limits.header_timeout, lingering_time=0,
    )  # fmt: skip
    await runner.setup()
    try:
        for host, port in listens:
            await GuardedSite(runner, guard, host, port).start()
        for host, port in tls_listens:
            await GuardedSite(runner, guard, host, port, tls).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
