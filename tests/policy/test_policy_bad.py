"""Every broken policy in tests/data/policies/bad gives its expected file:line:column message."""

from pathlib import Path

import pytest

from resolver.build.compile import compile_policy
from resolver.policy.compile import PolicyError

BAD = Path(__file__).resolve().parents[1] / "data" / "policies" / "bad"
CASES = sorted(BAD.glob("*.yaml"))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_bad_policy_message(path: Path) -> None:
    expected = path.with_suffix(".expected").read_text(encoding="utf-8").strip()
    try:
        snapshot = compile_policy(path)
    except PolicyError as exc:
        text = "\n".join(str(p) for p in exc.problems)
        assert all(str(p).startswith(f"{path}:") for p in exc.problems)
    else:
        assert "warning" in expected, "a broken policy compiled"
        text = "\n".join(str(p) for p in snapshot.warnings)
    assert f"{path}:{expected}" in text


def test_every_case_has_expectation() -> None:
    assert len(CASES) >= 14
    for path in CASES:
        assert path.with_suffix(".expected").exists(), path
