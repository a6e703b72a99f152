"""Services (blocklists/services.yaml) blocked and allowed per profile, device and schedule, named
by `explain`; and what the block page is told about a block (resolver/policy/blockinfo.py):
profile display names, the service, when a schedule block lifts, the mandated refusal."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from resolver.build.compile import compile_policy
from resolver.policy.blockinfo import block_info, mandated_refusal
from resolver.policy.compile import PolicyError
from resolver.policy.decide import decide
from resolver.policy.decision import Action, BlockMode, Tier
from resolver.policy.explain import explain_report

ROOT = Path(__file__).resolve().parents[2]
SCHOOL = ROOT / "policy" / "school.yaml"
MON_0900 = datetime.fromisoformat("2026-03-02T09:00:00+07:00")  # lesson hours (07:00-11:30)
MON_1200 = datetime.fromisoformat("2026-03-02T12:00:00+07:00")  # lunch break
MON_1600 = datetime.fromisoformat("2026-03-02T16:00:00+07:00")  # afternoon lessons
FRI_1600 = datetime.fromisoformat("2026-03-06T16:00:00+07:00")  # last lessons of the week
APR_29 = datetime.fromisoformat("2026-04-29T16:00:00+07:00")  # the day before two holidays
LOWER = "10.2.0.7"  # lower-secondary pupil (games blocked all day)
UPPER = "10.3.0.9"  # upper-secondary pupil (games blocked in lessons)

POLICY = """\
version: 1
timezone: Asia/Ho_Chi_Minh
clients:
  default: open
  networks: {10.1.0.0/16: kids}
schedules:
  lesson: {windows: ["mon-fri 08:00-09:00", "mon-fri 09:00-10:15"], block_services: [youtube]}
profiles:
  open: {age: unrestricted, allow_services: [tiktok]}
  kids:
    display: {vi: Lớp 10A1, en: Class 10A1}
    age: 11-14
    block_services: [roblox, discord]
    schedules: [lesson]
  family: {age: unrestricted, token: fam1ly0token0abcdef12, block_services: [tiktok]}
devices:
  an-phone: {profile: family, token: an0phone0token0123456, allow_services: [tiktok],
             block_services: [free-fire]}
"""


@pytest.fixture(scope="module")
def school():  # type: ignore[no-untyped-def]
    return compile_policy(SCHOOL)


@pytest.fixture
def own(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return compile_policy(path)


def test_a_profile_blocks_services_by_name_and_allows_others(own) -> None:  # type: ignore[no-untyped-def]
    monday = MON_1200.timestamp()
    for name in ("www.roblox.com", "rbxcdn.com", "discord.com", "cdn.discordapp.com"):
        d = decide(own, "10.1.2.3", name, 1, monday)
        assert d.action is Action.BLOCK, name
        assert d.service in ("roblox", "discord") and d.tier is Tier.CATEGORY
    assert decide(own, "10.1.2.3", "www.roblox.com", 1, monday).service == "roblox"
    assert decide(own, "10.1.2.3", "example.org", 1, monday).action is Action.ALLOW
    assert decide(own, "192.0.2.1", "www.roblox.com", 1, monday).action is Action.ALLOW


def test_a_device_changes_its_profiles_services(own) -> None:  # type: ignore[no-untyped-def]
    family, phone = own.profiles["family"], own.devices["an-phone"]
    noon = MON_1200.timestamp()
    assert decide(own, "", "www.tiktok.com", 1, noon, chosen=family).service == "tiktok"
    assert decide(own, "", "www.tiktok.com", 1, noon, chosen=phone).action is Action.ALLOW
    d = decide(own, "", "ff.garena.com", 1, noon, chosen=phone)
    assert d.action is Action.BLOCK and d.service == "free-fire"


def test_a_schedule_blocks_a_service_only_in_its_hours(own) -> None:  # type: ignore[no-untyped-def]
    lesson = decide(own, "10.1.2.3", "www.youtube.com", 1, MON_0900.timestamp())
    assert (lesson.action, lesson.tier, lesson.service) == (Action.BLOCK, Tier.SCHEDULE, "youtube")
    assert decide(own, "10.1.2.3", "www.youtube.com", 1, MON_1200.timestamp()).action in (
        Action.ALLOW,
        Action.REWRITE,  # a safe-search rewrite where the profile asks for one
    )


def test_explain_names_the_service(school, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = explain_report(school, LOWER, "www.tiktok.com", "A", MON_0900)
    assert report["service"] == "tiktok" and report["tier"] == "schedule"
    assert report["service_name"] == {"vi": "TikTok", "en": "TikTok"}
    assert report["source"].endswith("services.yaml")
    out = subprocess.run(
        [sys.executable, "-m", "resolver", "explain", "--policy", str(SCHOOL), "--client", UPPER,
         "--at", MON_0900.isoformat(), "lienquan.garena.vn"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "tier schedule, service lien-quan (Arena of Valor (Liên Quân" in out, out
    report = explain_report(school, LOWER, "www.tiktok.com", "A", MON_1200)
    assert report["action"] == "allow" and report["service"] is None


def test_an_unknown_service_is_a_check_error_with_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.replace("[roblox, discord]", "[roblox, tiktokk]"))
    with pytest.raises(PolicyError) as caught:
        compile_policy(path)
    text = str(caught.value)
    assert (
        "policy.yaml:13:" in text and "unknown service 'tiktokk' (did you mean \"tiktok\"?)" in text
    )
    done = subprocess.run(
        [sys.executable, "-m", "resolver", "check", "--json", str(path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0 and "tiktokk" in json.dumps(json.loads(done.stdout))


def test_block_info_tells_when_a_schedule_block_lifts(school) -> None:  # type: ignore[no-untyped-def]
    info = block_info(school, LOWER, "www.tiktok.com", MON_0900.timestamp())
    assert info is not None and info.opens_at is not None
    assert f"{info.opens_at:%Y-%m-%d %H:%M}" == "2026-03-02 11:30"
    assert info.service_name == {"vi": "TikTok", "en": "TikTok"}
    assert info.profile_name == {"vi": "Học sinh THCS", "en": "Lower-secondary pupils"}
    info = block_info(school, LOWER, "www.tiktok.com", MON_1600.timestamp())
    assert info is not None and f"{info.opens_at:%H:%M}" == "17:00"
    # Friday afternoon: open again at 17:00 the same day; the weekend has no lessons.
    info = block_info(school, LOWER, "www.tiktok.com", FRI_1600.timestamp())
    assert info is not None and f"{info.opens_at:%a %H:%M}" == "Fri 17:00"
    assert block_info(school, LOWER, "www.tiktok.com", MON_1200.timestamp()) is None


def test_block_info_of_back_to_back_windows_is_the_end_of_the_last(own) -> None:  # type: ignore[no-untyped-def]
    info = block_info(own, "10.1.2.3", "www.youtube.com", MON_0900.timestamp() - 1800)
    assert info is not None and f"{info.opens_at:%H:%M}" == "10:15"
    info = block_info(own, "10.1.2.3", "www.roblox.com", MON_0900.timestamp())
    assert info is not None and info.opens_at is None  # the profile's own block never lifts
    assert info.profile_name["vi"] == "Lớp 10A1"


def test_the_shipped_mandated_list_blocks_with_the_page_and_refuses_unblocks(school) -> None:  # type: ignore[no-untyped-def]
    for client in (LOWER, "10.9.0.5", "10.99.1.1"):  # pupils, teachers, guests (nxdomain mode)
        d = decide(school, client, "mandated-example.com", 1, MON_1200.timestamp())
        assert (d.action, d.tier, d.block_mode) == (
            Action.BLOCK,
            Tier.MANDATED,
            BlockMode.BLOCKPAGE,
        )
        info = block_info(school, client, "www.mandated-example.com", MON_1200.timestamp())
        assert info is not None and info.decision.tier is Tier.MANDATED and info.opens_at is None
    refusal = mandated_refusal(school, "sub.mandated-example.com")
    assert refusal is not None and "mandated list" in refusal
    assert mandated_refusal(school, "www.facebook.com") is None
