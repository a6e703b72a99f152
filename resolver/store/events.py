"""One answered DNS query as the query log receives it (the DNS path -> query log contract).

The DNS path builds a `QueryEvent` after answering and hands it to `QueryLog.submit()`. It passes
the client address in clear text: pseudonymizing is the log's job (in its writer thread, off the
DNS path), so the privacy setting lives in one place. Profiles marked "do not log"
(`Decision.log is False`) are filtered by the caller: such events are never submitted.
"""

from __future__ import annotations

from typing import NamedTuple

# The values `QueryEvent.action` takes (reports and the dashboard count by these).
ACTIONS: tuple[str, ...] = (
    "allowed",
    "blocked",
    "rewritten",
    "refused",
    "nxdomain",
    "nodata",
    "servfail",
)


class QueryEvent(NamedTuple):
    ts: float  # unix time of the answer
    client: str  # client IP as text; the log pseudonymizes or drops it per its `clients` setting
    profile: str
    qname: str  # lower-case, no trailing dot
    qtype: str  # "A", "AAAA", "TYPE65", ...
    action: str  # one of ACTIONS
    tier: str  # resolver.policy.decision.Tier value, e.g. "category", "mandated", "default"
    category: str | None  # category id that caused a block, else None
    rcode: int
    latency_ms: float
    transport: str  # "udp", "tcp", "dot", "doh" or "doq"
    cached: bool
