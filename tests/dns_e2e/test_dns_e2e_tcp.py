"""DNS over TCP (RFC 7766): pipelining with out-of-order answers, idle timeout, connection cap,
and the abuse cases: connections that trickle partial frames, clients that never read."""

from __future__ import annotations

import select
import socket
import struct
import time
from pathlib import Path

import dns.message
import pytest
from support.authority import Authority, Fault
from support.resolver_proc import ResolverFactory, ResolverProc, free_port, metric, unique_name
from support.tcpdns import read_exact


def _frame(msg: dns.message.Message) -> bytes:
    wire = msg.to_wire()
    return struct.pack("!H", len(wire)) + wire


def _read_msg(sock: socket.socket) -> dns.message.Message:
    size = struct.unpack("!H", read_exact(sock, 2))[0]
    return dns.message.from_wire(read_exact(sock, size))


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


def test_tcp_connection_cap_closes_the_idlest(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    rp = resolver_proc([authority.address], tcp={"max_connections": 3})
    socks = [_connect(rp, timeout=5) for _ in range(6)]
    for sock in socks[:3]:  # each newcomer past the cap closed the oldest idle one
        assert _closed_by_server(sock, deadline=time.monotonic() + 5)
    for i, sock in enumerate(socks[3:]):
        sock.sendall(_frame(dns.message.make_query(f"cap{i}.w.example.org", "A")))
        assert _read_msg(sock).rcode() == 0
    for sock in socks:
        sock.close()
    assert rp.query("example.org", "A", tcp=True).rcode() == 0


def test_trickling_connections_cannot_lock_out_new_clients(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    """Connections that never finish a frame fill the cap: a new client still gets its answer,
    and the connection closed for it is the idlest, not one that just completed a query."""
    cap = 12
    rp = resolver_proc([authority.address], tcp={"max_connections": cap, "idle_timeout": 60})
    tricklers = [_connect(rp, timeout=5) for _ in range(cap - 1)]
    for sock in tricklers:
        sock.sendall(b"\x00")  # the first byte of a length prefix, and nothing more
    active = _connect(rp, timeout=5)
    active.sendall(_frame(dns.message.make_query(unique_name("active"), "A")))
    assert _read_msg(active).rcode() == 0
    for sock in tricklers:
        sock.sendall(b"\x20")  # a trickle must not count as activity
    newcomers = []
    for i in range(3):
        sock = _connect(rp, timeout=5)
        newcomers.append(sock)
        sock.sendall(_frame(dns.message.make_query(unique_name(f"new{i}"), "A")))
        assert _read_msg(sock).rcode() == 0, f"newcomer {i} not served at the cap"
        assert _closed_by_server(tricklers[i], deadline=time.monotonic() + 5)
    active.sendall(_frame(dns.message.make_query(unique_name("still"), "A")))
    assert _read_msg(active).rcode() == 0  # the recently active connection was kept
    for sock in [*tricklers, active, *newcomers]:
        sock.close()


@pytest.mark.parametrize(
    ("first", "trickle"),
    [(b"\xff\xff", b"\x01"), (b"", b"\x00\x00")],
    ids=["byte-of-a-frame-that-never-ends", "empty-frames"],
)
def test_trickles_do_not_extend_the_idle_timeout(
    resolver_proc: ResolverFactory, authority: Authority, first: bytes, trickle: bytes
) -> None:
    """Only a query we answer is activity: neither the bytes of a frame that never completes
    nor frames too short to answer keep a connection open past idle_timeout."""
    rp = resolver_proc([authority.address], tcp={"idle_timeout": 1})
    with _connect(rp, timeout=5) as sock:
        sock.sendall(first)
        deadline = time.monotonic() + 8  # would be never if each trickle re-armed the timer
        closed = False
        while not closed and time.monotonic() < deadline:
            try:
                sock.sendall(trickle)
            except OSError:
                closed = True
                break
            closed = _closed_by_server(sock, deadline=time.monotonic() + 0.25)
        assert closed, "a trickling connection was kept open"


def test_client_that_never_reads_is_paused_then_closed(
    resolver_proc: ResolverFactory, authority: Authority
) -> None:
    """Pipelined queries whose answers (cache hits, written at once) are never read: the server
    stops reading, stays small and keeps answering UDP, and drops the client after idle_timeout."""
    admin = free_port()
    rp = resolver_proc(
        [authority.address], tcp={"idle_timeout": 2}, admin={"listen": [f"127.0.0.1:{admin}"]}
    )
    assert len(rp.query("big.example.org", "TXT", tcp=True).to_wire()) > 2000  # now cached
    rss_before = _rss_kib(rp)
    frame = _frame(dns.message.make_query("big.example.org", "TXT"))
    batch = frame * 400  # ~14 kB of queries, ~1 MB of answers
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    sock.settimeout(5)
    sock.connect((rp.host, rp.port))
    sock.setblocking(False)
    sent, limit = 0, 1_000_000  # the server would queue ~70 MB of answers for this much
    with sock:
        # Push until the server stops taking queries (our send buffer stays full for 1 s).
        while sent < limit:
            _, writable, _ = select.select([], [sock], [], 1.0)
            if not writable:
                break
            try:
                sent += sock.send(batch)
            except BlockingIOError:
                continue
        assert sent < limit, "the server kept reading queries whose answers nobody read"
        for i in range(20):  # UDP is served meanwhile
            assert rp.query(unique_name(f"udp{i}"), "A", timeout=2).rcode() == 0
        assert _rss_kib(rp) - rss_before < 50_000, "answers piled up in the server"
        deadline = time.monotonic() + 15
        reset = False
        while not reset and time.monotonic() < deadline:
            try:
                sock.send(frame)
            except BlockingIOError:
                time.sleep(0.1)
            except OSError:
                reset = True
        assert reset, "a client that never reads was kept open"
    assert metric(admin, "safe_resolver_tcp_closed_total", reason="stalled") == 1


def _closed_by_server(sock: socket.socket, deadline: float) -> bool:
    """Did the server close `sock` (EOF or reset) before `deadline`? Data read is discarded."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        readable, _, _ = select.select([sock], [], [], remaining)
        if not readable:
            return False
        try:
            if not sock.recv(65535):
                return True
        except OSError:
            return True


def _rss_kib(rp: ResolverProc) -> int:
    for line in Path(f"/proc/{rp.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")
