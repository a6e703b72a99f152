"""The overlay file the dashboard writes on approval is the one the policy compiler reads."""

from __future__ import annotations

from pathlib import Path

import yaml

from resolver.build.compile import compile_policy
from resolver.policy.decide import decide
from resolver.store.overlay import add_entry, new_entry

POLICY = """\
version: 1
clients:
  default: kids
profiles:
  kids:
    age: 6-10
  teens:
    age: 15-17
overlay: approved.yaml
"""


def test_approved_unblock_allows_the_name_and_its_subdomains(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    before = compile_policy(tmp_path / "policy.yaml")
    assert decide(before, "127.0.0.1", "tiktok.com", 1, 0.0).action.value == "block"
    assert before.overlay == tmp_path / "approved.yaml"

    entry = new_entry("allow", "kids", "name", "tiktok.com", until=None, now=0.0, note="#1")
    add_entry(before.overlay, entry, before.timezone)

    after = compile_policy(tmp_path / "policy.yaml")
    allowed = decide(after, "127.0.0.1", "www.tiktok.com", 1, 0.0)
    assert allowed.action.value == "allow" and allowed.tier.value == "allow"
    written = yaml.safe_load((tmp_path / "approved.yaml").read_text())
    assert [row["id"] for row in written["allow"]] == [entry.id]  # an all-digit id is quoted
