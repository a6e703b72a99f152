"""Client pseudonyms: a keyed hash whose key rotates, so pseudonyms cannot be linked across periods.

Why: the 2025 Personal Data Protection Law treats children's data as sensitive. A plain hash of
an IP address is reversible by trying all addresses; a keyed hash (HMAC-SHA256, truncated to 64
bits) is not, as long as the key is secret. The key lives only in this process's memory: it is
never written to disk, and a new random key replaces it when the period (local calendar day by
default) changes or the process restarts. Within a period one device keeps one pseudonym (an
admin can follow "this device asked for that site 20 times today"); yesterday's pseudonyms
cannot be tied to today's, not even by someone holding the database file.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time

ROTATIONS = ("hourly", "daily", "weekly")
PSEUDONYM_DIGITS = 16  # hex digits of a pseudonym (64 bits)


def _period(ts: float, rotation: str) -> tuple[int, ...]:
    t = time.localtime(ts)
    if rotation == "hourly":
        return (t.tm_year, t.tm_yday, t.tm_hour)
    if rotation == "weekly":
        year, week, _ = time.strftime("%G %V %u", t).split()
        return (int(year), int(week))
    return (t.tm_year, t.tm_yday)


class Pseudonymizer:
    """Maps a client address to a 16-hex-digit pseudonym under the current period's key."""

    def __init__(self, rotation: str = "daily") -> None:
        if rotation not in ROTATIONS:
            raise ValueError(
                f"key_rotation must be one of {', '.join(ROTATIONS)}, not {rotation!r}"
            )
        self.rotation = rotation
        self._period: tuple[int, ...] = ()
        self._key = b""
        self.rotations = 0

    def __call__(self, client: str, ts: float) -> str:
        """Pseudonym of `client` for an event at `ts`; moves to a fresh key when the period ends.

        The key only moves forward: a late event from the previous period gets the new key
        rather than bringing an old key back.
        """
        period = _period(ts, self.rotation)
        if period > self._period:
            self._key = os.urandom(
                32
            )  # the old key is dropped: nothing can recompute old pseudonyms
            self._period = period
            self.rotations += 1
        return self.lookup(client)

    def lookup(self, client: str) -> str:
        """Pseudonym under the current key without rotating (for searching the log)."""
        return hmac.new(self._key, client.encode(), hashlib.sha256).hexdigest()[:PSEUDONYM_DIGITS]
