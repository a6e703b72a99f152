"""Which clients may use the resolver. Default: loopback and private ranges only.

An open resolver is an amplification weapon, so the default allows nothing public; operators
list their subscriber ranges explicitly. Verdicts are memoized per address string.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from resolver.netaddr import client_ip

DEFAULT_ALLOW: tuple[str, ...] = (
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",  # carrier-grade NAT (RFC 6598): ISP subscriber side
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
)
_MEMO_LIMIT = 65_536

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AccessList:
    def __init__(self, networks: Iterable[str] = DEFAULT_ALLOW) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in networks
        )
        self._memo: dict[str, bool] = {}

    def allows(self, client: str) -> bool:
        verdict = self._memo.get(client)
        if verdict is None:
            verdict = self._check(client)
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[client] = verdict
        return verdict

    def _check(self, client: str) -> bool:
        addr = client_ip(client)
        if addr is None:
            return False
        return any(addr in net for net in self.networks if net.version == addr.version)
