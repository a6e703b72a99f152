"""Reading a client address the same way everywhere (ACL, profiles, admin access).

A dual-stack socket reports IPv4 clients as `::ffff:10.1.2.3` and link-local IPv6 clients with
a `%zone` suffix; unless every check folds them alike, one of them can be bypassed.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_ip(text: str | None) -> IPAddress | None:
    """The client's address with any zone index dropped and IPv4-mapped IPv6 unwrapped."""
    if not text:
        return None
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
