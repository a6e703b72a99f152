"""A list that fails entirely stops the compile, so a reload keeps the previous policy serving."""

from __future__ import annotations

from pathlib import Path

import pytest

from resolver.build.compile import compile_policy
from resolver.policy.compile import PolicyError

POLICY = """\
version: 1
clients: {default: kids}
profiles:
  kids: {age: 6-10}
lists:
  dir: lists
  catalogue_sources: false
  sources:
    - {id: local-adult, category: adult, path: local.txt, format: domains}
"""


@pytest.mark.parametrize(
    "content",
    [
        b"",  # empty (a truncated download written by hand)
        b"\x00\x01\x02garbage\xff\xfe\n<html><body>502 Bad Gateway</body></html>\n",
        b"not a domain\n!!!\n",
    ],
)
def test_list_without_usable_rules_is_an_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "local.txt").write_bytes(content)
    with pytest.raises(PolicyError) as caught:
        compile_policy(tmp_path / "policy.yaml")
    errors = [str(p) for p in caught.value.errors]
    assert errors == [
        f"{tmp_path / 'local.txt'}:1:1: list 'local-adult' has no usable rules"
        + (f" ({len(content.splitlines())} rejects)")
    ]


def test_partly_broken_list_still_loads_its_good_rules(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "local.txt").write_bytes(b"good-example.test\n\x00\xffjunk\nalso-good.test\n")
    snapshot = compile_policy(tmp_path / "policy.yaml")
    source = next(s for s in snapshot.sources if s["id"] == "local-adult")
    assert source["rules"] == 2 and source["rejects"] == 1
    assert any("1 lines skipped" in str(w) for w in snapshot.warnings)
