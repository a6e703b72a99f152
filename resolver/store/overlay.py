"""The policy overlay file: allow entries approved from the admin dashboard.

Approving an unblock request must not rewrite the admin's hand-edited policy YAML (comments,
order). Instead approvals go to a separate overlay file the policy loader merges in:

    allow:
      - {profile: students, name: example.org, note: "request #3", approved_at: "2025-..."}

The file is replaced atomically (write a temporary file, fsync, rename), so a crash mid-write
leaves the previous version and a concurrent reload never reads half a file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from resolver.fileio import atomic_write


def read_overlay(path: str | Path) -> list[dict[str, Any]]:
    """The overlay's allow entries ([] when the file does not exist yet)."""
    p = Path(path)
    if not p.exists():
        return []
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or not isinstance(data.get("allow", []), list):
        raise ValueError(f"{p}: expected a mapping with an 'allow' list")
    return list(data.get("allow") or [])


def add_overlay_allow(path: str | Path, profile: str, name: str, note: str = "") -> bool:
    """Add one allow entry; False if the same profile+name is already allowed."""
    p = Path(path)
    entries = read_overlay(p)
    name = name.lower().rstrip(".")
    if any(e.get("profile") == profile and e.get("name") == name for e in entries):
        return False
    entries.append(
        {
            "profile": profile,
            "name": name,
            "note": note,
            "approved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    text = "# Written by safe-resolver when an admin approves an unblock request.\n"
    text += yaml.safe_dump({"allow": entries}, allow_unicode=True, sort_keys=False)
    atomic_write(p, text.encode("utf-8"))
    return True
