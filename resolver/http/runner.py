"""Start an aiohttp app on the resolver's own event loop, on one or more addresses."""

from __future__ import annotations

import ssl

from aiohttp import web

# aiohttp's HTTP parser limits, kept explicit: longer request lines or headers get 400.
MAX_LINE = 8190
MAX_FIELD = 8190


async def start_http(
    app: web.Application,
    listens: list[tuple[str, int]],
    ssl_context: ssl.SSLContext | None = None,
) -> web.AppRunner:
    """Serve `app` on every (host, port); port 0 picks a free port (`runner.addresses`
    lists what was bound).

    The caller owns the runner: `await runner.cleanup()` stops it. Raises OSError if an
    address cannot be bound (after cleaning up whatever did start).
    """
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, max_line_size=MAX_LINE,
        max_field_size=MAX_FIELD,
    )  # fmt: skip
    await runner.setup()
    try:
        for host, port in listens:
            site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
            await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
