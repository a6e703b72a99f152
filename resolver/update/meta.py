"""The sidecar beside a list's last good copy: `<id>.meta.json`, what was fetched and when.

Written by `lists update` (URL sources: etag, sha256, rules...) and by the zone-transfer client
(serial, rules, primary...); read back before the next fetch or transfer. Apart from
`resolver.update.runner` so that reading it does not import an HTTP client.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def meta_path(copy: Path) -> Path:
    return copy.with_name(copy.stem + ".meta.json")


def read_meta(copy: Path) -> dict[str, Any]:
    """The stored metadata of a fetched copy; {} when missing, unreadable or orphaned."""
    if not copy.is_file():
        return {}  # without the copy, conditional headers would fetch nothing
    try:
        data = json.loads(meta_path(copy).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
