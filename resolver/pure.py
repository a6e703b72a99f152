"""SAFE_RESOLVER_PURE=1: serve with the pure-Python twin of every compiled part.

Each C part (the UDP fast path, `resolver.dns.fastpath`; the packed name table's walk,
`resolver.match.packed`; the question name reader, `resolver.dns.packet`) has a pure-Python
twin, the reference it is tested against; this switch makes the twins serve where the C code
is built, to compare the two or to rule one out.
"""

from __future__ import annotations

import importlib
import os

PURE_ENV = "SAFE_RESOLVER_PURE"


def pure_requested() -> bool:
    """Whether this process was asked to serve with the pure-Python twins."""
    return os.environ.get(PURE_ENV) == "1"


def serves_compiled(module: str) -> bool:
    """Whether the compiled part `module` (e.g. "resolver.match._packed") serves here: it is
    built, and this process was not asked for the pure-Python twins."""
    if pure_requested():
        return False
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
