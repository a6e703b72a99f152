"""Start-up: the workers start while the first policy builds; a policy that does not build
ends the start with its errors, and no worker outlives it."""

from __future__ import annotations

import uuid
from pathlib import Path

from support.authority import Authority
from support.resolver_proc import ResolverFactory


def tagged_processes(tag: str) -> list[int]:
    """Processes whose environment carries `tag` (the supervisor's workers inherit it)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if tag.encode() in (proc / "environ").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue  # gone, or not ours to read
    return found


def test_a_policy_that_does_not_build_ends_the_start_and_every_worker(
    tmp_path: Path, authority: Authority
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nprofiles:\n  kids: {age: twelve}\n")
    tag = f"SR_START_TAG={uuid.uuid4().hex}"
    name, value = tag.split("=")
    resolvers = ResolverFactory(tmp_path, env={name: value})
    rp = resolvers([authority.address], wait=False, policy=str(policy), workers=2)
    code = rp.proc.wait(timeout=120)
    rp.stopped = True
    assert code == 2, rp.output()
    assert "age" in rp.output() and "policy.yaml" in rp.output()
    assert "went away" not in rp.output()  # ended by the supervisor, not left to notice
    assert tagged_processes(tag) == []
