# Types of the compiled walk (resolver/match/_packed.c); resolver/match/packed.py documents it.
import mmap
from collections.abc import Callable

class Walk:
    def __init__(
        self,
        region: mmap.mmap | bytes,
        count: int,
        size: int,
        full: int,
        width: int,
        tld: dict[bytes, int],
        spill: list[dict[bytes, int]],
        at: list[int],
        below: list[int],
        flags: list[int],
        has_tld_rules: bool,
        fallback: Callable[[bytes, list[int]], int],
    ) -> None: ...
    def __call__(self, q: bytes, dots: list[int], /) -> int: ...
