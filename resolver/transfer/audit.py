"""The audit record of a list version going in: which zone and serial, how many rules, from where.

The authorities can ask an ISP which version of the mandated list it enforced and since when.
Every version a transfer installs passes through `record_version`, the one place to point at a
durable audit table; today it is a key=value line at warning level, which the journal keeps.
"""

from __future__ import annotations

import logging

log = logging.getLogger("resolver.audit")


def record_version(
    *,
    source: str,
    category: str,
    zone: str,
    primary: str,
    serial: int,
    previous_serial: int | None,
    rules: int,
    style: str,
) -> None:
    """Record that `serial` of `zone` is now the last good copy of list `source`."""
    log.warning(
        "list version installed source=%s category=%s zone=%s serial=%s previous_serial=%s "
        "rules=%s primary=%s transfer=%s",
        source,
        category,
        zone,
        serial,
        "none" if previous_serial is None else previous_serial,
        rules,
        primary,
        style,
    )
