"""NOTIFY (RFC 1996): a primary telling us a zone we transfer has changed.

The DNS handler passes every NOTIFY here (opcode 4, a handful a day). One is accepted only from
a configured primary's address, for a zone that primary serves us, as an SOA question: then it
is answered (NOERROR, QR and AA set, question echoed, signed back if it came signed) and the
zone's transfer is woken; NOTIFYs arriving while a transfer runs merge into one more round.
Anything else is REFUSED (a bad signature: NOTAUTH), counted by outcome, and logged at most once
per source address every LOG_INTERVAL.

An unsigned NOTIFY from the primary's address is accepted even when the zone has a TSIG key: it
only makes us ask the primary, over TCP and signed, whether there is a newer serial; what is
transferred is authenticated on its own.
"""

from __future__ import annotations

import logging
import time

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.tsig

from resolver.dns.packet import Query
from resolver.dns.synth import REFUSED, error_response
from resolver.stats import Stats
from resolver.transfer.manager import TransferManager
from resolver.transfer.xfr import TransferFailed

log = logging.getLogger(__name__)
NOTAUTH = 9
TYPE_SOA = 6
LOG_INTERVAL = 600.0  # seconds between two log lines about refused NOTIFYs from one address
LOG_SOURCES = 1024  # addresses remembered for that; beyond it the memory starts over


class NotifySink:
    """The handler's hook for opcode NOTIFY (`Handler.notify_sink`)."""

    def __init__(self, manager: TransferManager, stats: Stats) -> None:
        self.manager = manager
        self.stats = stats
        self._logged: dict[str, float] = {}

    def notify(self, query: Query, data: bytes, client: str) -> bytes | None:
        """The answer to a NOTIFY, or None when we transfer no zone at all (not ours to
        answer: the handler goes on as for any other opcode)."""
        if not self.manager.pullers:
            return None
        is_primary, pullers = self.manager.for_notify(client, query.qname)
        if not is_primary:
            return self._refuse(query, client, "refused-source", REFUSED)
        if not pullers or query.qtype != TYPE_SOA or query.qclass != 1:
            return self._refuse(query, client, "refused-zone", REFUSED)
        keys: dict[dns.name.Name, dns.tsig.Key] = {}
        try:
            for puller in pullers:
                keys.update(puller.keys() or {})
            message = dns.message.from_wire(data, keyring=keys)
        except TransferFailed as exc:  # our own key file is unreadable: say so, refuse
            log.warning("NOTIFY for %s refused: %s", query.qname, exc)
            return self._refuse(query, client, "refused-config", REFUSED)
        except (dns.message.UnknownTSIGKey, dns.tsig.BadSignature, dns.tsig.BadTime) as exc:
            return self._refuse(query, client, "tsig", NOTAUTH, str(exc))
        except dns.exception.DNSException as exc:
            return self._refuse(query, client, "malformed", REFUSED, str(exc))
        response = dns.message.make_response(message)
        response.flags |= dns.flags.AA
        self.stats.notifies["accepted"] += 1
        log.info("NOTIFY accepted zone=%s from=%s", query.qname, client)
        for puller in pullers:
            puller.wake.set()
        return response.to_wire()

    def _refuse(
        self, query: Query, client: str, outcome: str, rcode: int, detail: str = ""
    ) -> bytes:
        self.stats.notifies[outcome] += 1
        now = time.monotonic()
        if now - self._logged.get(client, -LOG_INTERVAL) >= LOG_INTERVAL:
            if len(self._logged) >= LOG_SOURCES:
                self._logged.clear()
            self._logged[client] = now
            log.warning(
                "NOTIFY refused from=%s zone=%s outcome=%s%s (further ones from this address "
                "are counted, not logged, for %d s)",
                client,
                query.qname,
                outcome,
                f": {detail}" if detail else "",
                LOG_INTERVAL,
            )
        return error_response(query, rcode)
