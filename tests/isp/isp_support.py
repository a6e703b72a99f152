"""What the ISP-tier tests share: a two-package policy, PROXY v2 datagrams and streams as a load
balancer sends them, waiting on the resolver's metrics and API with deadlines, and a policy
host with its signing keys and bundles.

Subscribers are loopback addresses bound as sources (127.0.0.0/8 is all ours on Linux):
127.0.0.2 has the "family" package, 127.0.0.3 the "standard" one. The load balancer (dnsdist,
or a test speaking for one) sends from 127.0.0.1, the only address trusted for PROXY headers.
Names under `w.example.org` resolve to 192.0.2.200 at the test authority; BLOCKED is denied to
the family package only (NXDOMAIN).
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import struct
import tarfile
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import dns.message
import dns.rcode
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from support.resolver_proc import ResolverFactory, ResolverProc, free_port, metric
from support.tcpdns import read_exact

from resolver.dns.proxyproto import build

BALANCER = "127.0.0.1"
FAMILY, STANDARD = "127.0.0.2", "127.0.0.3"
OUTSIDER = "203.0.113.9"  # not in access.allow
UNTRUSTED = "127.0.0.5"  # may ask, but not speak for others
ALLOWED_V4 = "192.0.2.200"
BLOCKED = "blocked.w.example.org"
CASINO = "casino.w.example.org"  # on the operator list of the bundled policy (gambling)
DEADLINE = 20.0
T = TypeVar("T")


def policy(folder: Path, deny: str = BLOCKED, **extra: Any) -> Path:
    """The two-package policy (and its lists folder) in `folder`; returns its path."""
    doc: dict[str, Any] = {
        "version": 1,
        "clients": {
            "default": "standard",
            "networks": {f"{FAMILY}/32": "family", f"{STANDARD}/32": "standard"},
        },
        "profiles": {
            "standard": {"age": "unrestricted", "block_mode": "nxdomain"},
            "family": {"age": "unrestricted", "deny": [deny], "block_mode": "nxdomain"},
        },
        "lists": {"dir": "lists", "catalogue_sources": False},
        **extra,
    }
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def profile_of(answer: dns.message.Message) -> str:
    """Which package answered a query for BLOCKED: family blocks it, standard resolves it."""
    if answer.rcode() == dns.rcode.NXDOMAIN:
        return "family"
    addresses = [item.address for rrset in answer.answer for item in rrset]
    return "standard" if addresses == [ALLOWED_V4] else f"unexpected {answer}"


def proxied_query(
    name: str, client: str | None, rdtype: str = "A", *, stream: bool = False
) -> tuple[bytes, int]:
    """(header + query, the query's ID): what a balancer sends for `client` (LOCAL if None)."""
    query = dns.message.make_query(name, rdtype)
    return build(client, 40000, BALANCER, 53, stream=stream) + query.to_wire(), query.id


def ask_udp(
    wire: bytes, target: tuple[str, int], source: str = BALANCER, timeout: float = 3.0
) -> dns.message.Message:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(timeout)
        sock.sendto(wire, target)
        return dns.message.from_wire(sock.recv(65535))


def ask_tcp(
    header: bytes, query: dns.message.Message, target: tuple[str, int], source: str = BALANCER
) -> dns.message.Message:
    """One query over a new connection that starts with `header` (may be b"")."""
    wire = query.to_wire()
    with socket.create_connection(target, timeout=3, source_address=(source, 0)) as sock:
        sock.sendall(header + struct.pack("!H", len(wire)) + wire)
        size = struct.unpack("!H", read_exact(sock, 2))[0]
        return dns.message.from_wire(read_exact(sock, size))


def instance(
    factory: ResolverFactory, upstream: str, policy_path: Path
) -> tuple[ResolverProc, int]:
    """An instance trusting BALANCER for PROXY headers, with its admin port; no rate limit
    (load tests send one subscriber's queries on purpose)."""
    admin = free_port()
    rp = factory(
        [upstream],
        "--proxy-protocol-from", f"{BALANCER}/32",
        policy=str(policy_path),
        admin={"listen": [f"127.0.0.1:{admin}"]},
        ratelimit={"enabled": False},
        wait=False,
    )  # fmt: skip
    wait_for("an instance to answer", lambda: answers_directly(rp))
    return rp, admin


def answers_directly(rp: ResolverProc) -> bool:
    """Whether `rp` answers a subscriber asking it directly (from the balancer's address a
    query without a PROXY header is dropped)."""
    probe = dns.message.make_query("example.org", "A").to_wire()
    try:
        ask_udp(probe, (rp.host, rp.port), STANDARD, 0.3)
    except OSError:
        return False
    return True


def wait_for(what: str, probe: Callable[[], T | None], deadline: float = DEADLINE) -> T:
    """Poll `probe` until it returns something true; fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline:g} s waiting for {what}")
        time.sleep(0.05)


def wait_metric(admin: int, name: str, at_least: float, **labels: str) -> float:
    """The metric's value once it reaches `at_least` (workers push counters every second)."""
    return wait_for(
        f"{name}{labels} >= {at_least}",
        lambda: (value := metric(admin, name, **labels)) >= at_least and value,
    )


def api(admin: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/api/v1/{path}", timeout=5) as resp:
        return json.loads(resp.read())


class PolicyHost:
    """The policy host: one bundle file over HTTP with an ETag (If-None-Match -> 304), on a
    thread. `publish` replaces the bytes; `stop` takes it off the network."""

    def __init__(self) -> None:
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, etag = host.body, f'"{hashlib.sha256(host.body).hexdigest()[:16]}"'
                sent = [t.strip() for t in self.headers.get("If-None-Match", "").split(",")]
                if etag in sent:
                    host.not_modified += 1
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                host.served += 1
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.body = b""
        self.served = self.not_modified = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/bundle.tar.gz"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, path: Path) -> None:
        self.body = path.read_bytes()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def keypair(folder: Path, name: str = "key") -> tuple[Path, Path, bytes]:
    """An Ed25519 key pair as `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout`
    write them (NAME.pem, NAME.pub), and the raw public key."""
    key = Ed25519PrivateKey.generate()
    private, public = folder / f"{name}.pem", folder / f"{name}.pub"
    private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public.write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def bundled_policy(folder: Path, deny: str = BLOCKED) -> Path:
    """The two-package policy with an operator list (beside it) and a fetched copy in its
    lists folder, as a policy host has them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "extra.txt").write_text(f"{CASINO}\n")
    return policy(
        folder,
        deny,
        lists={
            "dir": "lists",
            "catalogue_sources": False,
            "sources": [
                {"id": "extra", "category": "gambling", "path": "extra.txt"},
                {"id": "far", "category": "gambling", "url": "https://lists.example/far.txt"},
            ],
        },
        profiles={
            "standard": {"age": "unrestricted", "block_mode": "nxdomain"},
            "family": {
                "age": "unrestricted",
                "deny": [deny],
                "block": ["gambling"],
                "block_mode": "nxdomain",
            },
        },
    )


def retar(
    src: Path,
    dst: Path,
    change: Callable[[str, bytes], bytes] = lambda name, data: data,
    *,
    add: tuple[str, bytes] | None = None,
    link: tuple[str, str] | None = None,
) -> Path:
    """A copy of bundle `src` with members changed or added (manifest and signature kept)."""
    with tarfile.open(src) as old, tarfile.open(dst, "w:gz") as new:
        for member in old.getmembers():
            stream = old.extractfile(member)
            assert stream is not None
            data = change(member.name, stream.read())
            member.size = len(data)
            new.addfile(member, io.BytesIO(data))
        if add is not None:
            info = tarfile.TarInfo(add[0])
            info.size = len(add[1])
            new.addfile(info, io.BytesIO(add[1]))
        if link is not None:
            info = tarfile.TarInfo(link[0])
            info.type, info.linkname = tarfile.SYMTYPE, link[1]
            new.addfile(info)
    return dst
