"""`safe-resolver serve`: wire configuration, policy, DNS listeners and HTTP apps into one process.

Order matters: everything that can be wrong in the configuration or the policy is found before
a single socket is bound, so a bad start exits non-zero without ever answering. Shutdown on
SIGTERM stops accepting, lets in-flight queries finish, flushes the query log, then exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import socket
import ssl
import sys
import time
from datetime import datetime
from typing import Any

from aiohttp import web

from resolver import __version__, logs
from resolver.config import ServerConfig, apply_overrides, load_config
from resolver.dns.acl import AccessList
from resolver.dns.cache import AnswerCache
from resolver.dns.handler import Handler
from resolver.dns.server import InFlight, TcpServer, UdpServer
from resolver.dns.upstream import Forwarder
from resolver.policy.decision import Action, Decision
from resolver.reload import PolicyHolder
from resolver.stats import Stats
from resolver.store.querylog import QueryLog
from resolver.transfer.manager import TransferManager
from resolver.transfer.notify import NotifySink
from resolver.yamlsource import ConfigError

log = logging.getLogger("resolver")
SHUTDOWN_GRACE = 5.0  # seconds in-flight queries get to finish on SIGTERM
UDP_RECEIVE_BUFFER = 8 * 1024 * 1024  # bytes; see _grow_receive_buffer
_BLOCKED = frozenset((Action.BLOCK, Action.NXDOMAIN, Action.NODATA, Action.REFUSED))


def serve_command(args: argparse.Namespace) -> int:
    try:
        cfg = apply_overrides(
            load_config(args.config),
            listen=args.listen,
            upstreams=args.upstream,
            policy=args.policy,
            blockpage_listen=args.blockpage_listen,
            admin_listen=args.admin_listen,
            log_level=args.log_level,
        )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    logs.setup(cfg.log_level)
    import uvloop  # the only place the event loop implementation is chosen

    return uvloop.run(serve(cfg))


class Service:
    """The running resolver; implements `resolver.http.ports.ResolverControl` for the web apps."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.started = time.time()
        self.counters = Stats()
        self.cache = AnswerCache(cfg.cache)
        self.holder: PolicyHolder | None = None
        decide = None
        if cfg.policy is not None:
            from resolver.policy.decide import decide

            self.holder = PolicyHolder(cfg.policy, self.counters)
        self.querylog: QueryLog | None = None
        if cfg.querylog.enabled:
            ql = cfg.querylog
            self.querylog = QueryLog(
                ql.path,
                clients=ql.clients,
                retention_days=ql.retention_days or None,
                queue_size=ql.queue_size,
                batch=ql.batch,
                flush_interval=ql.flush_interval,
                key_rotation=ql.key_rotation,
                stats=self.counters,
            )
        addresses = [ipaddress.ip_address(a) for a in _blockpage_addresses(cfg)]
        v4 = [a.packed for a in addresses if a.version == 4]
        v6 = [a.packed for a in addresses if a.version == 6]
        self.forwarder = Forwarder(list(cfg.upstreams), cfg.upstream, self.counters)
        self.handler = Handler(
            acl=AccessList(cfg.access),
            cache=self.cache,
            forwarder=self.forwarder,
            stats=self.counters,
            policy=self.holder,
            decide=decide,
            querylog=self.querylog,
            blockpage_v4=v4,
            blockpage_v6=v6,
        )
        # Zone-transfer list sources (resolver/transfer): pulled at start, on NOTIFY, on refresh.
        self.transfers: TransferManager | None = None
        if cfg.policy is not None:
            self.transfers = TransferManager(cfg.policy, self.counters, self.reload, self.holder)
            self.handler.notify_sink = NotifySink(self.transfers, self.counters)
        self.inflight = InFlight()
        self.tcp = TcpServer(self.handler, self.inflight, self.counters, cfg.tcp)
        self.udp_transports: list[asyncio.BaseTransport] = []
        self.tcp_servers: list[asyncio.AbstractServer] = []
        self.http_runners: list[web.AppRunner] = []
        self.listeners: list[str] = []
        self.stopping = asyncio.Event()

    # -- start and stop ----------------------------------------------------------------------

    async def start_dns(self) -> None:
        loop = asyncio.get_running_loop()
        for host, port in self.cfg.listen:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: UdpServer(self.handler, self.inflight, self.counters),
                sock=_udp_socket(host, port),
            )
            self.udp_transports.append(transport)
            bound = transport.get_extra_info("sockname")[1]
            server = await loop.create_server(self.tcp, host, bound)
            self.tcp_servers.append(server)
            self._listening("dns", host, bound, "udp+tcp")

    async def start_http(self) -> None:
        from resolver.http.admin import make_admin_app
        from resolver.http.blockpage import make_blockpage_app
        from resolver.store.sqlite import SqliteRequestStore

        bp = self.cfg.blockpage
        store = None
        db = bp.requests_db or (self.cfg.querylog.path if self.cfg.querylog.enabled else None)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
            store = await asyncio.to_thread(SqliteRequestStore, db)
        if bp.listen or bp.https_listen:
            app = make_blockpage_app(
                self,
                hotline=bp.hotline,
                hotline_name=bp.hotline_name or None,
                store=store,
                lang_default=bp.lang,
            )
            if bp.listen:
                await self._serve_http("blockpage", app, list(bp.listen))
            if bp.https_listen and bp.cert and bp.key:
                tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                tls.load_cert_chain(bp.cert, bp.key)
                await self._serve_http("blockpage-https", app, list(bp.https_listen), tls)
        if self.cfg.admin.listen:
            admin = make_admin_app(
                self, token=self.cfg.admin.token, store=store, querylog=self.querylog
            )
            await self._serve_http("admin", admin, list(self.cfg.admin.listen))

    async def _serve_http(
        self,
        name: str,
        app: web.Application,
        listens: list[tuple[str, int]],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        from resolver.http.runner import start_http

        runner = await start_http(app, listens, tls)
        self.http_runners.append(runner)
        for address in runner.addresses:
            self._listening(name, address[0], address[1], "https" if tls else "http")

    def _listening(self, name: str, host: str, port: int, proto: str) -> None:
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.listeners.append(f"{name} {proto} {shown}")
        log.warning("listening %s=%s %s", name, shown, proto)

    async def stop(self) -> None:
        if self.transfers is not None:
            await self.transfers.stop()
        for server in self.tcp_servers:
            server.close()
        self.tcp.close_idle()
        await self.inflight.drain(SHUTDOWN_GRACE)
        for transport in self.udp_transports:
            transport.close()
        for server in self.tcp_servers:
            await server.wait_closed()
        for runner in self.http_runners:
            await runner.cleanup()
        if self.querylog is not None:
            await self.querylog.close()

    # -- ResolverControl ------------------------------------------------------------------------

    async def reload(self) -> dict[str, Any]:
        if self.holder is None:
            return {"ok": False, "generation": 0, "error": "no policy configured", "duration": 0}
        transfers = self.transfers
        mark = transfers.mark() if transfers is not None else 0
        result = await self.holder.reload()
        if transfers is not None and transfers.running:
            if result["ok"]:
                await transfers.fold(mark)  # zone-transfer increments now compiled in
            await transfers.configure()  # sources added, changed or removed
        return result

    def status(self) -> dict[str, Any]:
        snapshot = self.holder.current if self.holder else None
        return {
            "version": __version__,
            "policy_generation": self.counters.policy_generation,
            "policy": str(self.cfg.policy) if self.cfg.policy else None,
            "list_sizes": dict(self.counters.list_sizes),
            "uptime": round(time.time() - self.started, 1),
            "listeners": list(self.listeners),
            "upstreams": [u.address for u in self.counters.upstreams.values()],
            "cache_entries": len(self.cache),
            "profiles": list(snapshot.profile_ids) if snapshot else [],
            "last_reload": self.holder.last_result if self.holder else {},
            "transfers": self.transfers.status() if self.transfers else [],
        }

    def explain(
        self, client: str, name: str, qtype: str = "A", at: datetime | None = None
    ) -> dict[str, Any]:
        from resolver.policy.explain import explain_report

        snapshot = self._snapshot()
        ipaddress.ip_address(client)  # ValueError for the API's 400
        when = at if at is not None else datetime.now(snapshot.timezone)
        return explain_report(snapshot, client, name, qtype, when)

    def stats(self) -> Stats:
        return self.counters

    def flush_cache(self, name: str | None = None) -> int:
        count = self.cache.flush(name)
        self.counters.cache_size = len(self.cache)
        return count

    def block_reason(self, client: str, host: str) -> Decision | None:
        if self.holder is None or self.holder.current is None or self.handler.decide is None:
            return None
        name = host.lower().rstrip(".")
        decision = self.handler.decide(self.holder.current, client, name, 1, time.time(), None)
        return decision if decision.action in _BLOCKED else None

    def add_overlay_allow(self, profile: str, name: str, note: str) -> None:
        from resolver.lists.normalize import InvalidName, normalize_name
        from resolver.store.overlay import add_overlay_allow

        snapshot = self._snapshot()
        if profile not in snapshot.profiles:
            raise ValueError(f"unknown profile {profile!r}")
        if snapshot.overlay is None:
            raise ValueError("the policy has no `overlay:` file to record approvals in")
        try:
            name = normalize_name(name)
        except InvalidName as exc:
            raise ValueError(f"invalid name {name!r}: {exc}") from None
        add_overlay_allow(snapshot.overlay, profile, name, note)
        asyncio.get_running_loop().create_task(self.reload())

    def _snapshot(self) -> Any:
        if self.holder is None or self.holder.current is None:
            raise ValueError("no policy is loaded")
        return self.holder.current


def _udp_socket(host: str, port: int) -> socket.socket:
    """A bound UDP socket; IPv6 ones are v6-only so "[::]:53" can sit beside "0.0.0.0:53"."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        _grow_receive_buffer(sock)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _grow_receive_buffer(sock: socket.socket) -> None:
    """Room for a burst of queries while the loop is busy (a reload, a GC pass).

    The kernel default (~200 kB, some 2,000 queries) overflows in a few milliseconds at ISP rates
    and the kernel then drops queries silently. As root SO_RCVBUFFORCE passes net.core.rmem_max.
    """
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, UDP_RECEIVE_BUFFER)
            return
        except OSError:
            continue


def _blockpage_addresses(cfg: ServerConfig) -> list[str]:
    """Where block answers point: `blockpage.address`, else the page's own specific listen IPs."""
    if cfg.blockpage.addresses:
        return list(cfg.blockpage.addresses)
    listens = [*cfg.blockpage.listen, *cfg.blockpage.https_listen]
    return sorted({host for host, _ in listens if not ipaddress.ip_address(host).is_unspecified})


async def serve(cfg: ServerConfig) -> int:
    service = Service(cfg)
    if service.holder is not None:
        try:
            await asyncio.to_thread(service.holder.load_initial)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        except Exception as exc:
            print(f"{cfg.policy}: {exc}", file=sys.stderr)
            return 2
    try:
        if service.querylog is not None:
            service.cfg.querylog.path.parent.mkdir(parents=True, exist_ok=True)
            await service.querylog.start()
        await service.start_dns()
        await service.start_http()
    except OSError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        await service.stop()
        return 1
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.stopping.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(service.reload()))
    if service.transfers is not None:
        await service.transfers.start()  # after the handlers: it reads the policy in a thread
    await service.stopping.wait()
    log.warning("stopping: finishing %d queries in flight", len(service.inflight.tasks))
    await service.stop()
    return 0
