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
import sys
from typing import Any

from resolver import logs
from resolver.config import ServerConfig, apply_overrides, load_config
from resolver.dns.acl import AccessList
from resolver.dns.cache import AnswerCache
from resolver.dns.handler import Handler
from resolver.dns.server import InFlight, TcpServer, UdpServer
from resolver.dns.upstream import Forwarder
from resolver.reload import PolicyHolder
from resolver.stats import Stats
from resolver.yamlsource import ConfigError

log = logging.getLogger("resolver")
SHUTDOWN_GRACE = 5.0  # seconds in-flight queries get to finish on SIGTERM


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
            workers=args.workers,
        )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    logs.setup(cfg.log_level)
    import uvloop  # the only place the event loop implementation is chosen

    return uvloop.run(serve(cfg))


class Service:
    """The running resolver: what the admin API and signals act on."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.stats = Stats()
        self.cache = AnswerCache(cfg.cache)
        self.holder: PolicyHolder | None = None
        decide = None
        if cfg.policy is not None:
            from resolver.policy.compile import compile_policy
            from resolver.policy.decide import decide

            self.holder = PolicyHolder(cfg.policy, self.stats, compile_policy)
        v4 = [ipaddress.ip_address(a).packed for a in cfg.blockpage.addresses if ":" not in a]
        v6 = [ipaddress.ip_address(a).packed for a in cfg.blockpage.addresses if ":" in a]
        self.forwarder = Forwarder(list(cfg.upstreams), cfg.upstream, self.stats)
        self.handler = Handler(
            acl=AccessList(cfg.access),
            cache=self.cache,
            forwarder=self.forwarder,
            stats=self.stats,
            policy=self.holder,
            decide=decide,
            blockpage_v4=v4,
            blockpage_v6=v6,
        )
        self.inflight = InFlight()
        self.tcp = TcpServer(self.handler, self.inflight, self.stats, cfg.tcp)
        self.udp_transports: list[asyncio.BaseTransport] = []
        self.tcp_servers: list[asyncio.AbstractServer] = []
        self.stopping = asyncio.Event()

    async def start_dns(self) -> None:
        loop = asyncio.get_running_loop()
        reuse = self.cfg.workers > 1
        for host, port in self.cfg.listen:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: UdpServer(self.handler, self.inflight, self.stats),
                local_addr=(host, port),
                reuse_port=reuse or None,
            )
            self.udp_transports.append(transport)
            bound = transport.get_extra_info("sockname")[1]
            server = await loop.create_server(self.tcp, host, bound, reuse_port=reuse or None)
            self.tcp_servers.append(server)
            shown = f"[{host}]" if ":" in host else host
            log.warning("listening dns=%s:%s udp+tcp", shown, bound)

    async def reload(self) -> dict[str, Any]:
        if self.holder is None:
            return {"ok": False, "generation": 0, "error": "no policy configured", "seconds": 0}
        return await self.holder.reload()

    async def stop(self) -> None:
        for server in self.tcp_servers:
            server.close()
        self.tcp.close_idle()
        await self.inflight.drain(SHUTDOWN_GRACE)
        for transport in self.udp_transports:
            transport.close()
        for server in self.tcp_servers:
            await server.wait_closed()


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
        await service.start_dns()
    except OSError as exc:
        print(f"cannot listen: {exc}", file=sys.stderr)
        return 1
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.stopping.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(service.reload()))
    await service.stopping.wait()
    log.warning("stopping: finishing %d queries in flight", len(service.inflight.tasks))
    await service.stop()
    return 0
