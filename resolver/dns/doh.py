"""DNS over HTTPS (RFC 8484): an ASGI app served by hypercorn, over HTTP/2 and HTTP/1.1.

Why hypercorn: browsers and curl speak DoH over HTTP/2, which aiohttp (our block page and admin
server) does not serve. hypercorn is the ASGI server of the Pallets project, built on the
sans-I/O `h2` and `h11` libraries, runs inside an asyncio (uvloop) loop we already own, and takes
listening sockets by file descriptor, so each worker serves DoH on its own SO_REUSEPORT socket
as it does UDP, TCP and DoT.

Requests: GET `/dns-query?dns=<base64url, no padding>` and POST `/dns-query` with
`Content-Type: application/dns-message`; `/dns-query/{identity}` (a profile's token, or
`{profile}/{device}`) asks as that profile or device. Each query goes through the same
`Handler.answer` as UDP (transport "doh"). Errors are HTTP statuses with a one-line text body,
counted by reason in `safe_resolver_dropped_total{reason="doh-..."}`:
  400 bad or missing `dns=`, a body that is no DNS query; 404 an unknown path or identity (and
  `/dns-query` for a client outside `access.allow`); 405 another method; 413 a body over 65,535
  bytes (refused from its Content-Length, before reading it); 415 another content type.
An answer's `Cache-Control: max-age` is its smallest TTL (RFC 8484 5.1).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from resolver.dns.handler import Handler
from resolver.dns.message import BadReply, scan_reply
from resolver.dns.tls import TlsContexts
from resolver.stats import Stats

log = logging.getLogger(__name__)
PATH = "/dns-query"
MAX_MESSAGE = 65_535  # the largest DNS message (RFC 1035 4.2.2 framing)
MIN_MESSAGE = 12  # a header
DISCARD_LIMIT = 1 << 20  # bytes of a refused HTTP/2 body read and dropped (see _discard)
DNS_MESSAGE = "application/dns-message"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class HttpError(Exception):
    """A request refused with `status`; `reason` is the counter label."""

    def __init__(self, status: int, reason: str, text: str) -> None:
        super().__init__(text)
        self.status, self.reason, self.text = status, reason, text


class DohApp:
    """The ASGI application: HTTP request in, one DNS query through the handler, answer out."""

    def __init__(self, handler: Handler, stats: Stats) -> None:
        self.handler = handler
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = _Request(receive)
        try:
            status, body, headers = await self._answer(scope, request)
        except HttpError as exc:
            if scope.get("http_version") == "2" and not request.done:
                await _discard(request)
            self.stats.dropped[f"doh-{exc.reason}"] += 1
            status, body = exc.status, exc.text.encode() + b"\n"
            headers = [(b"content-type", b"text/plain; charset=utf-8")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[Any]]:
        client = scope["client"][0] if scope.get("client") else ""
        identity = self._identity(scope["path"], client)
        method = scope["method"]
        if method == "GET":
            query = _from_get(scope["query_string"])
        elif method == "POST":
            query = await _from_post(scope, receive)
        else:
            raise HttpError(405, "method", "use GET ?dns= or POST application/dns-message")
        result = self.handler.answer(query, client, "doh", identity)
        if result is not None and not isinstance(result, bytes):
            result = await result
        if result is None:
            raise HttpError(400, "malformed", "not a DNS query")
        headers = [
            (b"content-type", DNS_MESSAGE.encode()),
            (b"cache-control", f"max-age={_max_age(result)}".encode()),
        ]
        return 200, result, headers

    def _identity(self, path: str, client: str) -> str:
        """The identity in the path ("" for plain /dns-query); 404 when nobody is known by it,
        or for plain /dns-query when the client's address is not allowed either."""
        if path == PATH or path == PATH + "/":
            if not self.handler.acl.allows(client):
                raise HttpError(404, "not-found", "not found")
            return ""
        if not path.startswith(PATH + "/"):
            raise HttpError(404, "not-found", "not found")
        identity = path[len(PATH) + 1 :].rstrip("/")
        if self.handler.identified(identity) is None:
            raise HttpError(404, "unknown-identity", "unknown profile or device")
        return identity


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _from_get(query_string: bytes) -> bytes:
    """The `dns` parameter, base64url without padding (RFC 8484 4.1); padding is tolerated."""
    value = None
    for part in query_string.split(b"&"):
        name, _, raw = part.partition(b"=")
        if name == b"dns":
            value = raw
            break
    if not value:
        raise HttpError(400, "bad-param", "missing dns= parameter")
    if len(value) > (MAX_MESSAGE * 4) // 3 + 4:
        raise HttpError(413, "too-large", "dns= parameter too large")
    try:
        data = base64.b64decode(value + b"=" * (-len(value) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise HttpError(400, "bad-param", "dns= is not base64url") from None
    if len(data) < MIN_MESSAGE:
        raise HttpError(400, "bad-param", "dns= is too short for a DNS message")
    return data


async def _from_post(scope: Scope, receive: Receive) -> bytes:
    headers = dict(scope["headers"])
    ctype = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    length = headers.get(b"content-length")
    refusal = None
    if ctype != DNS_MESSAGE.encode():
        refusal = HttpError(415, "content-type", f"Content-Type must be {DNS_MESSAGE}")
    elif length is not None and (not length.isdigit() or int(length) > MAX_MESSAGE):
        refusal = HttpError(413, "too-large", f"a DNS message is at most {MAX_MESSAGE} bytes")
    if refusal is not None:
        raise refusal
    body = bytearray()
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpError(400, "disconnect", "the client went away")
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > MAX_MESSAGE:
            raise HttpError(413, "too-large", f"a DNS message is at most {MAX_MESSAGE} bytes")
    if len(body) < MIN_MESSAGE:
        raise HttpError(400, "malformed", "the body is too short for a DNS message")
    return bytes(body)


class _Request:
    """`receive` that notes when the request body has been read to its end."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.done = False

    async def __call__(self) -> MutableMapping[str, Any]:
        message = await self.receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            self.done = True
        return message


async def _discard(request: _Request) -> None:
    """Read and drop the rest of an HTTP/2 request body we refuse, up to DISCARD_LIMIT bytes:
    hypercorn fails the whole connection when body data arrives for a stream already answered.
    Nothing is kept; a body beyond the limit is answered (and its connection lost) as is."""
    seen = 0
    while seen <= DISCARD_LIMIT and not request.done:
        seen += len((await request()).get("body", b""))


def _max_age(answer: bytes) -> int:
    """The smallest TTL of the answer section; for a negative answer the SOA's negative TTL."""
    try:
        reply = scan_reply(answer)
    except BadReply:
        return 0
    if reply.min_ttl is not None:
        return reply.min_ttl
    return reply.neg_ttl or 0


def hypercorn_config(
    contexts: TlsContexts, sockets: list[socket.socket], *, idle: float, handshake: float,
    streams: int,
) -> Any:  # fmt: skip
    """A hypercorn Config serving `sockets` (taken over: their descriptors go to hypercorn)
    with the current context of `contexts` (its SNI callback swaps in newer ones)."""
    from hypercorn.config import Config

    class _Config(Config):
        @property
        def ssl_enabled(self) -> bool:
            return True

        def create_ssl_context(self) -> ssl.SSLContext:
            return contexts.current

    config = _Config()
    config.bind = [f"fd://{sock.detach()}" for sock in sockets]
    config.insecure_bind = []
    config.keep_alive_timeout = idle
    config.ssl_handshake_timeout = handshake
    config.h2_max_concurrent_streams = streams
    config.h11_max_incomplete_size = 16_384
    config.include_server_header = False
    config.accesslog = None
    config.errorlog = logging.getLogger("resolver.doh.server")
    config.graceful_timeout = 2.0
    return config


class DohServer:
    """hypercorn serving `DohApp` on this worker's DoH sockets, inside the worker's loop."""

    def __init__(self, app: DohApp, config: Any) -> None:
        self.app, self.config = app, config
        self.stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        from hypercorn.asyncio import serve

        app: Any = self.app  # an ASGI 3 app; hypercorn's types spell out every event
        coro = serve(app, self.config, shutdown_trigger=self.stopping.wait, mode="asgi")
        self.task = asyncio.get_running_loop().create_task(coro)

    async def stop(self) -> None:
        self.stopping.set()
        if self.task is not None:
            await self.task
