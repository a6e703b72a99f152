"""DNS over TCP (RFC 7766): pipelining with out-of-order answers, idle timeout, connection cap."""

from __future__ import annotations

import socket
import struct
import time

import dns.message
from support.authority import Authority, Fault
from support.resolver_proc import ResolverFactory, ResolverProc, unique_name


def _frame(msg: dns.message.Message) -> bytes:
    wire = msg.to_wire()
    return struct.pack("!H", len(wire)) + wire


def _read_msg(sock: socket.socket) -> dns.message.Message:
    size = struct.unpack("!H", _read_exact(sock, 2))[0]
    return dns.message.from_wire(_read_exact(sock, size))


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed by the server")
        buf += chunk
    return buf


def _connect(rp: ResolverProc, timeout: float = 3.0) -> socket.socket:
    return socket.create_connection((rp.host, rp.port), timeout=timeout)


def test_pipelined_queries_answered_by_id(
    shared_resolver: ResolverProc, authority: Authority
) -> None:
    slow = unique_name("slow")
    authority.set_fault(Fault(delay_ms=250, udp_only=False), slow)  # below the 400 ms timeout
    names = [slow] + [unique_name("pipe") for _ in range(4)]
    queries = {1000 + i: name for i, name in enumerate(names)}
    with _connect(shared_resolver) as sock:
        sock.sendall(
            b"".join(
                _frame(_with_id(dns.message.make_query(name, "A"), qid))
                for qid, name in queries.items()
            )
        )
        answers = [_read_msg(sock) for _ in names]
    assert {a.id for a in answers} == set(queries)
    for a in answers:
        assert a.question[0].name.to_text().rstrip(".") == queries[a.id]
        assert a.answer, (a.id, a.rcode(), str(a))
        assert [r.to_text() for r in a.answer[0]] == ["192.0.2.200"]
    # RFC 7766 6.2.1.1: the slow answer must not hold back the ones behind it
    assert answers[-1].id == 1000


def _with_id(msg: dns.message.Message, qid: int) -> dns.message.Message:
    msg.id = qid
    return msg


def test_tcp_idle_connection_closed(resolver_proc: ResolverFactory, authority: Authority) -> None:
    rp = resolver_proc([authority.address], tcp={"idle_timeout": 1})
    with _connect(rp, timeout=5) as sock:
        start = time.monotonic()
        assert sock.recv(1) == b""  # orderly close from the server
        assert time.monotonic() - start < 4


def test_tcp_connection_cap(resolver_proc: ResolverFactory, authority: Authority) -> None:
    rp = resolver_proc([authority.address], tcp={"max_connections": 3})
    socks = [_connect(rp, timeout=1.5) for _ in range(6)]
    served = 0
    for i, sock in enumerate(socks):
        try:
            sock.sendall(_frame(dns.message.make_query(f"cap{i}.w.example.org", "A")))
            served += _read_msg(sock).rcode() == 0
        except (OSError, ConnectionError):
            pass
    for sock in socks:
        sock.close()
    assert 1 <= served <= 3
    time.sleep(0.3)
    assert rp.query("example.org", "A", tcp=True).rcode() == 0  # capacity comes back
