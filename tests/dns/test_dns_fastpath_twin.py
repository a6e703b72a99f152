"""The compiled fast path against its pure-Python twin (the reference): random sequences of
clients, stored answers (TTLs to count down or not), queries (0x20 case, IDs, flags, EDNS,
garbage), the doorkeeper's sightings, clears and clocks give the same misses, the same answers
on the wire and the same counters; so do PROXY v2 datagrams from a load balancer, well-formed
or not."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.fastpath import CFastPath, Wire, answer_to, opt, query, wire

from resolver.dns.fastpath import PyFastPath, address_bytes, name_end
from resolver.dns.proxygate import SIGNATURE, ProxyGate
from resolver.dns.proxyproto import build, parse
from resolver.stats import Stats

pytestmark = pytest.mark.skipif(CFastPath is None, reason="resolver.dns._fastpath not built")

NOW = 5000.0
HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
NAMES = ["a.example", "b.example", "www.c.test", "x"]


@st.composite
def packets(draw: st.DrawFn) -> bytes:
    """A query for one of NAMES in random case, or garbage."""
    if draw(st.integers(0, 9)) == 0:
        garbage: bytes = draw(st.binary(max_size=60))
        return garbage
    name = draw(st.sampled_from(NAMES))
    name = "".join(c.upper() if draw(st.booleans()) else c for c in name)
    return query(
        name,
        qid=draw(st.integers(0, 0xFFFF)),
        qtype=draw(st.sampled_from([1, 28])),
        flags=draw(st.sampled_from([0x0100, 0x0000, 0x0110])),
        edns=draw(st.sampled_from([b"", opt(), opt(do=True)])),
    )


OPS = {
    "client": st.tuples(st.just("client"), st.integers(0, 2), st.sampled_from([0, 1, 1, 1, 2])),
    "put": st.tuples(
        st.just("put"),
        st.sampled_from([1, 1, 2]),
        packets(),
        st.sampled_from([-1.0, 0.5, 2.0, 2.0]),  # valid until NOW + this
        st.integers(0, 5),  # stats id
        st.sampled_from(["echo", "echo", "ttl", "ttl", "other", "short", "upper", "bad ttl"]),
        st.integers(-2, 2),  # the second the TTLs are for, against NOW
    ),
    "ask": st.tuples(
        st.just("ask"), st.integers(0, 2), packets(), st.sampled_from([0.0, 0.0, 1.0, 3.0])
    ),
    "clear": st.tuples(st.just("clear")),
    "admit": st.tuples(st.just("admit"), st.sampled_from([0, 1, 1, 2]), packets()),
}
KINDS = ["ask"] * 8 + ["put"] * 6 + ["client"] * 3 + ["admit"] * 3 + ["clear"]


def apply(fast: Any, w: Wire, op: tuple[Any, ...]) -> Any:
    kind = op[0]
    if kind == "client":
        fast.set_client(address_bytes(HOSTS[op[1]]), op[2])
        return None
    if kind == "put":
        _, klass, packet, until, stats_id, shape, second = op
        if name_end(packet) < 0:
            return "not a query"
        answer = answer_to(packet)
        if shape == "other":
            answer = answer_to(query("zz.other"))
        elif shape == "short":
            answer = answer[:13]
        elif shape == "upper":
            packet = (
                packet[:12] + packet[12 : name_end(packet)].upper() + packet[name_end(packet) :]
            )
        ttls = {"ttl": [len(answer) - 10], "bad ttl": [len(answer) - 3]}.get(shape, [])
        return fast.put(klass, packet, answer, NOW + until, stats_id, ttls, int(NOW) + second)
    if kind == "ask":
        _, host, packet, later = op
        misses, answers = w.exchange(fast, [packet], NOW + later, host=HOSTS[host])
        return [(data, addr[0]) for data, addr in misses], answers
    if kind == "admit":
        return fast.admit(op[1], op[2])
    fast.clear()
    return None


def recased(packet: bytes, data: st.DataObject) -> bytes:
    """`packet` with another ID and its name's letters in random case (a 0x20 client)."""
    qid = data.draw(st.binary(min_size=2, max_size=2))
    end = name_end(packet)
    name = bytes(
        c ^ 0x20 if chr(c).isalpha() and data.draw(st.booleans()) else c for c in packet[12:end]
    )
    return qid + packet[2:12] + name + packet[end:]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_compiled_and_twin_agree(data: st.DataObject) -> None:
    compiled = CFastPath(batch=8, answers=1000, clients=1000)
    twin = PyFastPath(batch=8, answers=1000, clients=1000)
    stored: list[bytes] = []
    with wire() as wc, wire() as wt:
        for host in range(len(HOSTS)):
            start = ("client", host, data.draw(st.sampled_from([0, 1, 1, 2])))
            apply(compiled, wc, start), apply(twin, wt, start)
        for _ in range(data.draw(st.integers(1, 30))):
            op = data.draw(OPS[data.draw(st.sampled_from(KINDS))])
            if op[0] == "ask" and stored and data.draw(st.integers(0, 3)):
                op = (op[0], op[1], recased(data.draw(st.sampled_from(stored)), data), op[3])
            result = apply(compiled, wc, op)
            assert result == apply(twin, wt, op), op
            if op[0] == "put" and result is True:
                stored.append(op[2])
            assert (compiled.answers, compiled.clients) == (twin.answers, twin.clients), op
    assert compiled.harvest()[0::2] == twin.harvest()[0::2]  # hits and send errors


# Behind a load balancer: 127.0.0.1 relays with PROXY v2 headers; 127.0.0.5 is not trusted.
BALANCER = "127.0.0.1"
UNTRUSTED = "127.0.0.5"
INNER = ["127.0.0.2", "127.0.0.3", "::ffff:127.0.0.3", "2001:db8::7", BALANCER]
KNOWN = ["127.0.0.2", "127.0.0.3", "2001:db8::7", BALANCER, UNTRUSTED]  # given a class
SHAPES = ["proxy"] * 4 + ["tcp", "tlv", "local", "none", "bad tlv", "long", "flip", "cut"]


@st.composite
def relayed(draw: st.DrawFn, packet: bytes) -> bytes:
    """`packet` as a balancer might send it: a PROXY v2 header for one of INNER, or LOCAL, or
    none, or one broken in some way."""
    shape = draw(st.sampled_from(SHAPES))
    inner = draw(st.sampled_from(INNER))
    if shape == "none":
        return packet
    if shape == "local":
        return build(None) + packet
    tlvs = {"tlv": b"\x04\x00\x02ab", "bad tlv": b"\x04\x00\x05ab"}.get(shape, b"")
    head = bytearray(build(inner, 40000, stream=shape == "tcp", tlvs=tlvs))
    if shape == "long":  # the header claims bytes of the query, or more than there are
        head[14:16] = (len(head) - 16 + draw(st.integers(1, len(packet) + 2))).to_bytes(2, "big")
    elif shape == "flip":  # version, command, family, protocol, length or an address
        head[draw(st.integers(12, len(head) - 1))] = draw(st.integers(0, 255))
    datagram = bytes(head) + packet
    if shape == "cut":
        datagram = datagram[: draw(st.integers(0, len(head) + 2))]
    return datagram


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_compiled_and_twin_agree_behind_a_balancer(data: st.DataObject) -> None:
    """PROXY v2 datagrams from a balancer: the same hits (for the client the header names, sent
    to the balancer) and misses (returned unchanged), and never a hit the gate would refuse."""
    compiled = CFastPath(batch=8, answers=1000, clients=1000)
    twin = PyFastPath(batch=8, answers=1000, clients=1000)
    gate = ProxyGate([f"{BALANCER}/32", "2001:db8::/126"], Stats())
    for fast in (compiled, twin):
        fast.set_balancers([(address_bytes(BALANCER), 32), (address_bytes("2001:db8::"), 126)])
        for host in KNOWN:
            fast.set_client(address_bytes(host), 1 + KNOWN.index(host) % 2)
    stored: list[bytes] = []
    with wire() as wc, wire() as wt:
        for _ in range(data.draw(st.integers(1, 30))):
            if data.draw(st.integers(0, 2)) == 0 or not stored:
                op = data.draw(OPS["put"])
                result = apply(compiled, wc, op)
                assert result == apply(twin, wt, op), op
                if result is True:
                    stored.append(op[2])
                continue
            packet = recased(data.draw(st.sampled_from(stored)), data)
            sender = data.draw(st.sampled_from([BALANCER, BALANCER, BALANCER, UNTRUSTED]))
            datagram = data.draw(relayed(packet))
            misses, answers = wc.exchange(compiled, [datagram], NOW, host=sender)
            got = [(data, addr[0]) for data, addr in misses], answers
            twin_misses, twin_answers = wt.exchange(twin, [datagram], NOW, host=sender)
            assert got == ([(data, addr[0]) for data, addr in twin_misses], twin_answers)
            assert got[0] in ([], [(datagram, sender)])  # returned unchanged
            if answers and (sender == BALANCER or datagram.startswith(SIGNATURE)):
                opened = gate.open_datagram(datagram, sender)  # what Python would have read
                assert opened is not None and parse(datagram)[0] is not None, datagram  # no LOCAL
                assert answers[0][:2] == opened[0][:2]  # the inner query's ID
                event("a hit relayed by the balancer" if sender == BALANCER else "other hit")
    assert compiled.harvest()[0::2] == twin.harvest()[0::2]
