"""Encrypted DNS end to end: the real resolver with DoT, DoH and DoQ on loopback, a throwaway
CA certificate made here, a policy with one profile and two devices, and the clients' calls."""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.message
import dns.query
from support.authority import Authority
from support.certs import make_cert
from support.resolver_proc import ResolverFactory, ResolverProc, free_port

SERVER_NAME = "dns.example.vn"
FAMILY_TOKEN = "fam1ly0token0abcdef12"
AN_TOKEN = "an0phone0token0123456"
BINH_TOKEN = "b1nh0tablet0token0789"
ALLOWED_ADDRESS = "192.0.2.200"  # what the authority answers for *.w.example.org
BLOCKED_ADDRESS = "127.0.0.1"  # the block page (its listen address)
GAMES = "games.w.example.org"  # denied by the family profile; an-phone's own allow lifts it
VIDEO = "video.w.example.org"  # denied for binh-tablet only

POLICY = f"""\
version: 1
clients:
  default: open
profiles:
  open: {{age: unrestricted}}
  family:
    age: unrestricted
    token: {FAMILY_TOKEN}
    deny: [{GAMES}]
devices:
  an-phone: {{profile: family, token: {AN_TOKEN}, allow: [{GAMES}]}}
  binh-tablet: {{profile: family, token: {BINH_TOKEN}, deny: [{VIDEO}]}}
"""


@dataclass
class Encrypted:
    """A running resolver with its encrypted listeners and what a client needs to reach them."""

    proc: ResolverProc
    dot: int
    doh: int
    doq: int
    admin: int
    page: int  # the block page (blocked names answer its address)
    cert: Path
    key: Path

    def context(self, alpn: str = "dot") -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.cert))
        ctx.set_alpn_protocols([alpn])
        return ctx

    def dot_query(self, name: str, sni: str = SERVER_NAME, rdtype: str = "A") -> Any:
        q = dns.message.make_query(name, rdtype)
        return dns.query.tls(
            q, "127.0.0.1", port=self.dot, timeout=5, ssl_context=self.context(),
            server_hostname=sni,
        )  # fmt: skip

    def doh_query(self, name: str, path: str = "/dns-query", post: bool = True) -> Any:
        q = dns.message.make_query(name, "A")
        return dns.query.https(
            q, "127.0.0.1", port=self.doh, timeout=5, path=path, post=post,
            verify=ssl.create_default_context(cafile=str(self.cert)),
            http_version=dns.query.HTTPVersion.H2,
        )  # fmt: skip

    def doq_query(self, name: str, sni: str = SERVER_NAME) -> Any:
        q = dns.message.make_query(name, "A")
        return dns.query.quic(
            q, "127.0.0.1", port=self.doq, timeout=5, verify=str(self.cert), server_hostname=sni
        )

    def doh_url(self, path: str = "/dns-query") -> str:
        return f"https://127.0.0.1:{self.doh}{path}"


def sni(token: str, profile: str = "family") -> str:
    """A device's TLS server name, Android's Private DNS form."""
    return f"{token}-{profile}.{SERVER_NAME}"


def addresses(reply: Any) -> list[str]:
    return sorted(rr.address for rrset in reply.answer for rr in rrset if rrset.rdtype == 1)


def wait_for_port(port: int, deadline: float = 15.0) -> None:
    """Until a TCP listener accepts on 127.0.0.1:port (the workers bind DoT/DoH last)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def start(
    factory: ResolverFactory, directory: Path, authority: Authority, allow: list[str], **extra: Any
) -> Encrypted:
    cert, key = make_cert(directory, SERVER_NAME, wildcard=True)
    policy = directory / "policy.yaml"
    policy.write_text(POLICY)
    dot, doh, doq, admin, page = (free_port() for _ in range(5))
    proc = factory(
        [authority.address],
        policy=str(policy),
        access={"allow": allow},
        admin={"listen": [f"127.0.0.1:{admin}"]},
        blockpage={"listen": [f"127.0.0.1:{page}"]},
        dot_listen=[f"127.0.0.1:{dot}"],
        doh_listen=[f"127.0.0.1:{doh}"],
        doq_listen=[f"127.0.0.1:{doq}"],
        tls_cert=str(cert),
        tls_key=str(key),
        encrypted={"server_name": SERVER_NAME, **extra.pop("encrypted", {})},
        **extra,
    )
    wait_for_port(dot)
    wait_for_port(doh)
    return Encrypted(proc, dot, doh, doq, admin, page, cert, key)
