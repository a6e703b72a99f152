"""DDR (RFC 9461, 9462): with encrypted listeners on, `_dns.resolver.arpa` SVCB names our own
DoQ, DoT and DoH endpoints, parsed here by dnspython; other resolvers stay undesignated."""

from __future__ import annotations

import dns.rdatatype
import dns.rdtypes.svcbbase as svcb
from encrypted_support import SERVER_NAME, Encrypted


def _endpoints(reply: object) -> dict[str, tuple[int, str | None, list[str]]]:
    """alpn -> (port, dohpath, ipv4 hints) of each SVCB record in the answer."""
    out = {}
    for rrset in reply.answer:  # type: ignore[attr-defined]
        assert rrset.rdtype == dns.rdatatype.SVCB
        for rr in rrset:
            assert str(rr.target) == SERVER_NAME + "."
            params = rr.params
            alpn = b",".join(params[svcb.ParamKey.ALPN].ids).decode()
            port = params[svcb.ParamKey.PORT].port
            path = params.get(svcb.ParamKey.DOHPATH)
            hints = [str(a) for a in params[svcb.ParamKey.IPV4HINT].addresses]
            out[alpn] = (port, path.value.decode() if path else None, hints)
    return out


def test_ddr_designates_our_encrypted_endpoints(lan: Encrypted) -> None:
    for name in ("_dns.resolver.arpa", f"_dns.{SERVER_NAME}"):
        reply = lan.proc.query(name, "SVCB")
        assert reply.rcode() == 0
        assert _endpoints(reply) == {
            "doq": (lan.doq, None, ["127.0.0.1"]),  # the certificate's address
            "dot": (lan.dot, None, ["127.0.0.1"]),
            "h2,http/1.1": (lan.doh, "/dns-query{?dns}", ["127.0.0.1"]),
        }
    # The same over DoT (a client that upgraded asks again there).
    assert len(lan.dot_query("_dns.resolver.arpa", rdtype="SVCB").answer[0]) == 3


def test_other_ddr_names_are_not_designated(lan: Encrypted) -> None:
    # Only SVCB is answered with our endpoints; the DDR name's other types stay NODATA (bypass).
    reply = lan.proc.query("_dns.resolver.arpa", "A")
    assert reply.rcode() == 0 and not reply.answer
