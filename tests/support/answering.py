"""Asking a `Handler` directly, as the listeners do: from inside the running event loop.

A forwarded query's answer is a future the forwarder completes from the loop, so the call
itself must run there; a synchronous answer comes back as bytes at once.
"""

from __future__ import annotations

import asyncio
from typing import Any


def answer_on(
    loop: asyncio.AbstractEventLoop,
    handler: Any,
    packet: bytes,
    client: str,
    transport: str = "udp",
    identity: str | None = None,
    timeout: float = 10.0,
) -> bytes | None:
    """`handler.answer(...)` called in `loop`, awaited (up to `timeout`) when it is pending."""

    async def ask() -> bytes | None:
        result = handler.answer(packet, client, transport, identity)
        if result is None or isinstance(result, bytes):
            return result
        return await asyncio.wait_for(result, timeout)

    return loop.run_until_complete(ask())
