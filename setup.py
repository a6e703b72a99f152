"""The one compiled part, built at install when a C compiler is there: resolver/dns/_fastpath.c.

Everything else is in pyproject.toml. Without a compiler (or off Linux: recvmmsg/sendmmsg) the
install still succeeds and the pure-Python twin, resolver/dns/fastpath.py, serves instead.
"""

from __future__ import annotations

import sys
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

FASTPATH = Extension(
    "resolver.dns._fastpath",
    sources=["resolver/dns/_fastpath.c"],
    extra_compile_args=["-O2", "-Wall", "-Wextra"],
)


class OptionalBuildExt(build_ext):  # type: ignore[misc]  # setuptools has no types here
    """build_ext that warns instead of failing: the extension only makes serving cheaper."""

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


def _skipped(exc: Exception) -> None:
    print(
        f"WARNING: resolver.dns._fastpath not built ({exc}); the pure-Python fast path "
        "serves instead (install gcc and python3-dev, then reinstall, for the compiled one)",
        file=sys.stderr,
    )


setup(
    ext_modules=[FASTPATH] if sys.platform.startswith("linux") else [],
    cmdclass={"build_ext": OptionalBuildExt},
)
