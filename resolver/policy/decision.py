"""What the policy decides for one query: the contract between the policy engine and the DNS server.

The DNS server turns a `Decision` into bytes; the query log and metrics record its fields. Decisions
are immutable and shared: the policy may hand out the same object for many queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Action(StrEnum):
    ALLOW = "allow"  # forward / answer from cache as usual
    BLOCK = "block"  # answer according to `block_mode`
    REWRITE = (
        "rewrite"  # answer CNAME `target` plus the target's records (safe search, RPZ rewrite)
    )
    NXDOMAIN = (
        "nxdomain"  # always NXDOMAIN whatever the block mode (bypass canaries, RPZ `CNAME .`)
    )
    NODATA = "nodata"  # NOERROR with no answer (DDR `_dns.resolver.arpa`, RPZ `CNAME *.`)
    REFUSED = "refused"  # the client gets REFUSED (e.g. a profile with the internet switched off)


class BlockMode(StrEnum):
    BLOCKPAGE = "blockpage"  # A/AAAA point at our block page address; other types NODATA
    NXDOMAIN = "nxdomain"
    NULL = "null"  # 0.0.0.0 / ::
    REFUSED = "refused"


class Tier(StrEnum):
    """Which layer of the precedence table produced the decision (for metrics, reports, explain)."""

    MANDATED = "mandated"
    ALLOW_LIST = "allow"  # the profile's own allow list
    DENY_LIST = "deny"  # the profile's own deny list
    CATEGORY = "category"
    KEYWORD = "keyword"
    SCHEDULE = "schedule"
    SAFESEARCH = "safesearch"
    BYPASS = "bypass"  # bypass-prevention switches (canary domains, DDR, Private Relay)
    DEFAULT = "default"


# The members the query path tests for, as module names. On Python 3.11 reading a member
# through its class (`Action.ALLOW`) runs EnumType.__getattr__'s hook, ~0.2 µs each time (a
# first-seen blocked answer did so about fifteen times); a module name is a dict lookup.
ACT_ALLOW: Final = Action.ALLOW
ACT_BLOCK: Final = Action.BLOCK
ACT_REWRITE: Final = Action.REWRITE
ACT_NXDOMAIN: Final = Action.NXDOMAIN
ACT_NODATA: Final = Action.NODATA
ACT_REFUSED: Final = Action.REFUSED
MODE_BLOCKPAGE: Final = BlockMode.BLOCKPAGE
MODE_NXDOMAIN: Final = BlockMode.NXDOMAIN
MODE_REFUSED: Final = BlockMode.REFUSED
TIER_MANDATED: Final = Tier.MANDATED
TIER_CATEGORY: Final = Tier.CATEGORY
TIER_KEYWORD: Final = Tier.KEYWORD
TIER_SCHEDULE: Final = Tier.SCHEDULE
TIER_SAFESEARCH: Final = Tier.SAFESEARCH


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    tier: Tier
    profile: str
    category: str | None = None  # category id that caused a block, e.g. "adult"; None otherwise
    block_mode: BlockMode = BlockMode.NXDOMAIN
    target: str | None = None  # REWRITE: the CNAME target (lower-case, no trailing dot)
    rule: str | None = None  # the rule's name as written in its list, for explain
    source: str | None = None  # the list file or policy key that holds the rule
    ttl: int = 60  # TTL for synthesized answers
    log: bool = True  # False for "do not log" profiles
    service: str | None = None  # the service (blocklists/services.yaml) whose domain was blocked
