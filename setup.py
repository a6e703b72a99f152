"""The compiled parts; everything else is in pyproject.toml.

- resolver/dns/_fastpath.c, the UDP fast path, resolver/match/_packed.c, the packed name
  table's lookup walk, resolver/dns/_question.c, the question name read into the walk's key,
  and resolver/dns/_untrack.c, which keeps the answer cache out of the cyclic collector's
  walks, built at every install where a C compiler is. Without one (or off Linux:
  recvmmsg/sendmmsg) the install still succeeds and their pure-Python twins,
  resolver/dns/fastpath.py, `PackedNames.python_lookup`, `packet.python_question_name` and
  leaving the collector to untrack the cache's tuples itself, serve instead.
- With SAFE_RESOLVER_MYPYC=1 (and mypy in the build environment: `make compiled`), the Python
  modules a first-seen query runs through are also compiled with mypyc, from the same source;
  the .py files stay the reference (and serve wherever this build is not done).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Measured: a first-seen blocked query costs 15-25 % less CPU with these compiled, and a
# forwarded miss about 40 % less (the forwarder, cache, reply scan and UDP listener:
# bench/README.md).
# The decision memo and `Decision` are native classes here, so `decide()` and the handler read
# their fields directly: a first-seen blocked query 5-15 % less again. The access list's check,
# made for every query that reaches Python, was one of that path's two interpreted calls (~1 %;
# the other, `Stats.observe_latency`, measured no different compiled).
MYPYC_MODULES = [
    "resolver/dns/packet.py",
    "resolver/dns/synth.py",
    "resolver/match/key.py",
    "resolver/dns/handler.py",
    "resolver/dns/fastanswers.py",
    "resolver/policy/decide.py",
    "resolver/policy/memo.py",
    "resolver/policy/decision.py",
    "resolver/dns/upstream.py",
    "resolver/dns/cache.py",
    "resolver/dns/message.py",
    "resolver/dns/udp.py",
    "resolver/dns/acl.py",
]


def c_part(module: str) -> Extension:
    """A C part, built from the file its module name gives (resolver/dns/_fastpath.c...)."""
    return Extension(
        module,
        sources=[module.replace(".", "/") + ".c"],
        extra_compile_args=["-O2", "-Wall", "-Wextra"],
    )


C_PARTS = [
    c_part("resolver.dns._fastpath"),
    c_part("resolver.match._packed"),
    c_part("resolver.dns._untrack"),
    c_part("resolver.dns._question"),
]


class OptionalBuildExt(build_ext):  # type: ignore[misc]  # setuptools has no types here
    """build_ext that warns instead of failing: the extensions only make serving cheaper."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all (distutils raises several kinds)
            _skipped(exc)

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # compiler present but the build failed (headers missing)
            _skipped(exc)


def _skipped(exc: BaseException) -> None:
    print(
        f"WARNING: a compiled part was not built ({exc}); the pure-Python code serves instead "
        "(install gcc and python3-dev, then reinstall, for the compiled one)",
        file=sys.stderr,
    )


def mypyc_extensions() -> list[Any]:
    """The mypyc-compiled modules when SAFE_RESOLVER_MYPYC=1 asks for them and mypyc can."""
    if os.environ.get("SAFE_RESOLVER_MYPYC") != "1":
        return []
    try:
        from mypyc.build import mypycify

        # Only these modules' types matter here: the modules they import stay interpreted.
        options = ["--follow-imports=silent", "--ignore-missing-imports"]
        return list(mypycify([*options, *MYPYC_MODULES], opt_level="3"))
    except (Exception, SystemExit) as exc:  # mypyc missing, or the source does not type-check
        _skipped(exc)
        return []


setup(
    ext_modules=([*C_PARTS, *mypyc_extensions()] if sys.platform.startswith("linux") else []),
    cmdclass={"build_ext": OptionalBuildExt},
)
