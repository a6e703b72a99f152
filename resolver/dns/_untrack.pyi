# Types of resolver/dns/_untrack.c, which documents it.
from typing import TypeVar

T = TypeVar("T")

def untracked(obj: T) -> T: ...
