"""The fast path behind a load balancer, for the compiled type and its twin alike: a PROXY v2
datagram from a balancer is answered for the client its header names (that client's class and
credit), back to the balancer, as plain DNS; whatever the gate must read goes to Python
unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from support.fastpath import IMPLEMENTATIONS, answer_to, query, wire

from resolver.dns.fastpath import FastPathLike, address_bytes
from resolver.dns.proxyproto import build

NOW = 1000.0
BALANCER, OTHER = "127.0.0.1", "127.0.0.5"
FAMILY, STANDARD = "127.0.0.2", "127.0.0.3"
ASKED = query("blocked.example", qid=1)


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> Any:
    return request.param


def behind_balancer(impl: Any) -> FastPathLike:
    """A table trusting BALANCER, with an answer per class for ASKED: family (class 1) gets
    192.0.2.1, standard (class 2) 192.0.2.2."""
    fast: FastPathLike = impl(batch=16, answers=16, clients=16)
    fast.set_balancers([(address_bytes(BALANCER), 32)])
    fast.set_client(address_bytes(FAMILY), 1)
    fast.set_client(address_bytes(STANDARD), 2)
    fast.set_client(address_bytes("2001:db8::7"), 2)
    for klass in (1, 2):
        assert fast.put(klass, ASKED, answer_to(ASKED, bytes((192, 0, 2, klass))), NOW + 1, klass)
    return fast


def test_a_relayed_repeat_is_answered_to_the_balancer_for_the_client_named(impl: Any) -> None:
    fast = behind_balancer(impl)
    again = query("BLOCKED.example", qid=0xBEEF)
    relayed = {
        FAMILY: (build(FAMILY, 40000, BALANCER), 1),
        STANDARD: (build(STANDARD, 40001, BALANCER), 2),
        "tcp": (build(STANDARD, stream=True), 2),  # dnsdist marks UDP as either
        "tlvs": (build(FAMILY, tlvs=b"\x04\x00\x02ab\x05\x00\x00"), 1),  # skipped
        "mapped": (build("::ffff:127.0.0.2"), 1),  # an IPv4-mapped client is the IPv4 one
        "ipv6": (build("2001:db8::7"), 2),
    }
    with wire() as w:
        for what, (header, klass) in relayed.items():
            misses, answers = w.exchange(fast, [header + again], NOW, host=BALANCER)
            # plain DNS back to the balancer: the query's ID and case, the client's answer
            assert (misses, answers) == ([], [answer_to(again, bytes((192, 0, 2, klass)))]), what
    assert sorted(fast.harvest()[0]) == [(1, 3), (2, 3)]


def test_what_the_gate_must_read_reaches_python_unchanged(impl: Any) -> None:
    fast = behind_balancer(impl)
    fast.set_client(address_bytes(BALANCER), 1)  # never so in service: even then
    fast.set_client(address_bytes(OTHER), 1)
    header = bytearray(build(FAMILY))
    broken = {
        "local": build(None) + ASKED,  # a health check: the balancer's own query
        "no header": ASKED,  # from a balancer: refused by the gate
        "version 1": bytes(header[:12]) + b"\x11" + bytes(header[13:]) + ASKED,
        "command 2": bytes(header[:12]) + b"\x22" + bytes(header[13:]) + ASKED,
        "unix": bytes(header[:13]) + b"\x32" + bytes(header[14:]) + ASKED,
        "unspec": bytes(header[:13]) + b"\x02" + bytes(header[14:]) + ASKED,
        "protocol 3": bytes(header[:13]) + b"\x13" + bytes(header[14:]) + ASKED,
        "too long": bytes(header[:14]) + (200).to_bytes(2, "big") + bytes(header[16:]) + ASKED,
        "no room for addresses": bytes(header[:14]) + b"\x00\x08" + bytes(header[16:]) + ASKED,
        "bad tlv": build(FAMILY, tlvs=b"\x04\x00\x09ab") + ASKED,
        "cut": bytes(header[:20]),
        "unknown client": build("127.0.0.9") + ASKED,
    }
    with wire() as w:
        for what, datagram in broken.items():
            misses, answers = w.exchange(fast, [datagram], NOW, host=BALANCER)
            assert ([data for data, _ in misses], answers) == ([datagram], []), what
        # a header from anyone else: the gate refuses it, even from a client with a class
        misses, answers = w.exchange(fast, [build(FAMILY) + ASKED], NOW, host=OTHER)
        assert (len(misses), answers) == (1, [])
        # no balancers: every header is the gate's again
        fast.set_balancers([])
        misses, answers = w.exchange(fast, [build(FAMILY) + ASKED], NOW, host=BALANCER)
        assert (len(misses), answers) == (1, [])
    assert fast.harvest()[0] == []


def test_the_client_named_spends_its_own_credit(impl: Any) -> None:
    fast = behind_balancer(impl)
    fast.set_client(address_bytes(FAMILY), 1, 2)
    relayed = [build(FAMILY) + query("blocked.example", qid=n) for n in range(3)]
    with wire() as w:
        misses, answers = w.exchange(fast, relayed, NOW, host=BALANCER)
        assert (len(answers), [data for data, _ in misses]) == (2, relayed[2:])
        # the standard client behind the same balancer has its own (unlimited) credit
        misses, answers = w.exchange(fast, [build(STANDARD) + ASKED], NOW, host=BALANCER)
        assert (misses, len(answers)) == ([], 1)
    assert fast.set_client(address_bytes(FAMILY), 1) == 0


def test_balancers_are_networks_and_outlive_a_clear(impl: Any) -> None:
    fast = behind_balancer(impl)
    fast.set_balancers([(address_bytes("127.0.0.7"), 29)])  # 127.0.0.0-7: host bits ignored
    fast.clear()
    fast.set_client(address_bytes(FAMILY), 1)
    assert fast.put(1, ASKED, answer_to(ASKED), NOW + 1, 0)
    with wire() as w:
        for sender in (BALANCER, OTHER):
            misses, answers = w.exchange(fast, [build(FAMILY) + ASKED], NOW, host=sender)
            assert (misses, answers) == ([], [answer_to(ASKED)]), sender
        fast.set_balancers([(address_bytes("127.0.0.4"), 31)])  # 127.0.0.4-5
        misses, answers = w.exchange(fast, [build(FAMILY) + ASKED], NOW, host=BALANCER)
        assert (len(misses), answers) == (1, [])


@pytest.mark.parametrize(
    "networks",
    [[(b"\x7f\x00\x00", 24)], [(address_bytes(BALANCER), 33)], [(b"::1", -1)], [("::1", 8)], [1]],
)
def test_a_bad_network_is_refused(impl: Any, networks: list[Any]) -> None:
    with pytest.raises(ValueError):
        impl(batch=1, answers=1, clients=1).set_balancers(networks)
