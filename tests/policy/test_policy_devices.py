"""Devices: a profile's variant per device (own schedules, allow and deny), the identities that
select them, every mistake reported with its place, and the plain form that carries them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from resolver.build.compile import build_snapshot, compile_policy
from resolver.build.snapshotfile import map_snapshot
from resolver.policy.compile import PolicyError
from resolver.policy.decide import decide
from resolver.policy.decision import Action, Tier
from resolver.policy.explain import explain_report

ROOT = Path(__file__).resolve().parents[2]
AN = "an0phone0token0123456"
BINH = "b1nh0tablet0token0789"
NIGHT = datetime.fromisoformat("2026-03-02T22:30:00+07:00")
DAY = datetime.fromisoformat("2026-03-02T12:00:00+07:00")

POLICY = f"""\
version: 1
clients:
  default: open
schedules:
  bedtime: {{windows: ["22:00-23:59"], internet: "off"}}
profiles:
  open: {{age: unrestricted}}
  family:
    age: unrestricted
    token: fam1ly0token0abcdef12
    deny: [games.example]
devices:
  an-phone:
    profile: family
    token: {AN}
    schedules: [bedtime]
    allow: [games.example]
  binh-tablet: {{profile: family, token: {BINH}, deny: [video.example]}}
expect:
  - {{device: an-phone, name: games.example, at: "2026-03-02T12:00", action: allow}}
  - {{device: binh-tablet, name: games.example, action: block}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def snap(tmp_path: Path):  # type: ignore[no-untyped-def]
    return compile_policy(write(tmp_path, POLICY))


def test_each_device_is_its_profile_with_its_own_rules(snap) -> None:  # type: ignore[no-untyped-def]
    an, binh = snap.devices["an-phone"], snap.devices["binh-tablet"]
    family = snap.profiles["family"]
    assert an.id == binh.id == "family" and an.device == "an-phone"
    assert len({family.num, an.num, binh.num}) == 3
    cases = [
        (family, "games.example", DAY, Action.BLOCK, Tier.DENY_LIST),
        (an, "games.example", DAY, Action.ALLOW, Tier.ALLOW_LIST),  # one child's exception
        (binh, "games.example", DAY, Action.BLOCK, Tier.DENY_LIST),
        (binh, "video.example", DAY, Action.BLOCK, Tier.DENY_LIST),
        (family, "video.example", DAY, Action.ALLOW, Tier.DEFAULT),
        (an, "example.org", NIGHT, Action.REFUSED, Tier.SCHEDULE),  # the phone's bedtime
        (binh, "example.org", NIGHT, Action.ALLOW, Tier.DEFAULT),
    ]
    for chosen, name, when, action, tier in cases:
        got = decide(snap, "203.0.113.9", name, 1, when, chosen=chosen)
        assert (got.action, got.tier, got.profile) == (action, tier, "family"), (chosen, name)
    assert decide(snap, "203.0.113.9", "games.example", 1, DAY).profile == "open"


def test_identities_select_profile_and_devices(snap) -> None:  # type: ignore[no-untyped-def]
    ids = snap.identities
    assert ids["fam1ly0token0abcdef12"] is snap.profiles["family"]
    assert ids[f"family/{AN}"] is ids[f"{AN}-family"] is snap.devices["an-phone"]
    assert ids[f"family/{BINH}"] is snap.devices["binh-tablet"]
    assert "family" not in ids and "an-phone" not in ids  # names are not identities by default
    assert snap.device_paths() == {"an-phone": f"family/{AN}", "binh-tablet": f"family/{BINH}"}
    assert snap.check_expectations() == []


def test_devices_survive_the_snapshot_file(snap, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # The build writes the snapshot file every serving process maps: devices cross in it.
    mapped = map_snapshot(build_snapshot(tmp_path / "policy.yaml").path, 1)
    assert set(mapped.devices) == {"an-phone", "binh-tablet"}
    assert set(mapped.identities) == set(snap.identities)
    an = mapped.identities[f"{AN}-family"]
    assert an is mapped.devices["an-phone"]
    assert decide(mapped, "x", "games.example", 1, DAY, chosen=an).action is Action.ALLOW
    assert decide(mapped, "x", "example.org", 1, NIGHT, chosen=an).action is Action.REFUSED


def test_explain_as_a_device(snap) -> None:  # type: ignore[no-untyped-def]
    report = explain_report(snap, "127.0.0.1", "video.example", "A", DAY, device="binh-tablet")
    assert report["device"] == "binh-tablet" and report["profile"] == "family"
    assert report["action"] == "block" and report["rule"] == "video.example"
    with pytest.raises(ValueError, match="unknown device"):
        explain_report(snap, "127.0.0.1", "video.example", "A", DAY, device="nobody")


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ("  x: {profile: family}", "device 'x' needs a token"),
        ("  x: {profile: family, token: short}", "16 to 48 lower-case letters and digits"),
        ("  x: {profile: nosuch, token: " + AN + "}", "unknown profile 'nosuch'"),
        ("  x: {profile: family, token: " + AN + ", schedules: [nap]}", "unknown schedule 'nap'"),
        ("  Bad_Name: {profile: family, token: " + AN + "}", "device name 'Bad_Name'"),
        (f"  x: {{profile: family, token: {AN}}}\n  y: {{profile: family, token: {AN}}}",
         "has the token of 'x'"),
        ("  x: {profile: family, token: " + AN + ", colour: red}", "unknown key 'colour'"),
    ],
)  # fmt: skip
def test_device_mistakes_are_reported_with_their_place(
    tmp_path: Path, devices: str, message: str
) -> None:
    text = POLICY.split("devices:")[0] + "devices:\n" + devices + "\n"
    with pytest.raises(PolicyError) as caught:
        compile_policy(write(tmp_path, text))
    found = [str(p) for p in caught.value.problems if p.severity == "error"]
    assert any(message in line and ":" in line.split(": ")[0] for line in found), found


def test_names_may_identify_on_a_private_network(tmp_path: Path) -> None:
    text = (
        POLICY.split("devices:")[0] + "identities: names\ndevices:\n  an-phone: {profile: family}\n"
    )
    snap = compile_policy(write(tmp_path, text))
    assert snap.identities["family/an-phone"] is snap.devices["an-phone"]
    assert snap.identities["an-phone-family"] is snap.devices["an-phone"]
    assert snap.identities["open"] is snap.profiles["open"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("safe-resolver")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([str(script), *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=60)  # fmt: skip


def test_cli_explain_device_and_policy_test_rows(tmp_path: Path) -> None:
    policy = write(tmp_path, POLICY)
    out = _run("explain", "--policy", str(policy), "--device", "binh-tablet", "video.example")
    assert out.returncode == 0, out.stderr
    assert "device   binh-tablet -> profile family" in out.stdout
    assert "decision block (tier deny" in out.stdout
    table = tmp_path / "expect.yaml"
    table.write_text(
        "- {device: an-phone, name: games.example, at: '2026-03-02T12:00', expect: allow}\n"
        "- {device: binh-tablet, name: games.example, expect: allow}\n"
        "- {device: nobody, name: games.example, expect: allow}\n"
    )
    bad = _run("policy", "test", str(policy), str(table))
    assert bad.returncode == 2 and "unknown device 'nobody'" in bad.stdout
    table.write_text("\n".join(table.read_text().splitlines()[:2]) + "\n")
    res = _run("policy", "test", str(policy), str(table), "--json")
    rows = json.loads(res.stdout)["rows"]
    assert [(r["device"], r["ok"]) for r in rows] == [("an-phone", True), ("binh-tablet", False)]
    assert "device binh-tablet games.example: got block" in rows[1]["message"]
