"""The control channel between the supervisor and one worker process.

A stream socket pair the supervisor creates and the worker inherits: nobody else can reach it,
so messages are pickled dicts (the two ends are the same program; pickle carries `Stats` and
query-log events as they are). Frames are a 4-byte length and the pickle. A message with an
`id` is a request and gets exactly one reply carrying the same `id` (`{"id": n, "ok": ...}`);
one without is a notice (query-log batches, counters, "ready"). Both ends can do both.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import pickle
import struct
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Message = dict[str, Any]
Handler = Callable[[Message], Awaitable[Message | None]]
MAX_FRAME = 64 << 20
_LEN = struct.Struct("!I")


class ChannelClosed(Exception):
    """The other end went away (exited, or closed the channel)."""


class Channel:
    """One end of the control channel: `request()` and `notify()` out, `handler` for what
    comes in (requests get its return value as their reply; notices go to it too)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._handler = handler
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Message]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = asyncio.Event()

    @classmethod
    async def over(cls, sock: Any, handler: Handler) -> Channel:
        """A channel over a connected stream socket (one end of a `socket.socketpair()`)."""
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_FRAME)
        return cls(reader, writer, handler)

    def notify(self, message: Message) -> None:
        """Send a notice; dropped silently when the channel is closed."""
        if not self.closed.is_set():
            self._write(message)

    async def request(self, message: Message, timeout: float) -> Message:
        """Send a request and wait for its reply; ChannelClosed or TimeoutError otherwise."""
        if self.closed.is_set():
            raise ChannelClosed("control channel closed")
        rid = next(self._ids)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = future
        try:
            self._write({**message, "id": rid})
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._waiting.pop(rid, None)

    def _write(self, message: Message) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self._writer.write(_LEN.pack(len(data)) + data)

    async def run(self) -> None:
        """Read until the other end goes away; then fail every pending request."""
        try:
            while True:
                head = await self._reader.readexactly(_LEN.size)
                (size,) = _LEN.unpack(head)
                if size > MAX_FRAME:
                    raise ValueError(f"control frame of {size} bytes")
                message = pickle.loads(await self._reader.readexactly(size))
                self._dispatch(message)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, EOFError) as exc:
            if not isinstance(exc, asyncio.IncompleteReadError | ConnectionResetError):
                log.warning("control channel broken: %s", exc)
        finally:
            self.closed.set()
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ChannelClosed("control channel closed"))
            self._waiting.clear()

    def _dispatch(self, message: Message) -> None:
        if "reply" in message:
            future = self._waiting.get(message["reply"])
            if future is not None and not future.done():
                future.set_result(message)
            return
        task = asyncio.get_running_loop().create_task(self._answer(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, message: Message) -> None:
        rid = message.get("id")
        try:
            reply = await self._handler(message)
        except Exception as exc:  # a failed request is reported to the asker, never fatal here
            log.exception("control request %s failed", message.get("op"))
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if rid is not None:
            self.notify({"ok": True, **(reply or {}), "reply": rid})

    async def drain(self) -> None:
        """Wait until what was written so far has left (or the channel closed)."""
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    def close(self) -> None:
        self._writer.close()
