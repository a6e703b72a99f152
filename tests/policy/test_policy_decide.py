"""Decision tables over the example policies (the school plan is fixed by issue 4)."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from resolver.build.compile import compile_policy
from resolver.build.listfile import rule_line
from resolver.policy.decide import PRECEDENCE, decide
from resolver.policy.decision import Action, Tier
from resolver.policy.explain import explain_report
from resolver.policy.memo import DecisionMemo

POLICY = Path(__file__).resolve().parents[2] / "policy"
MON_0900 = datetime.fromisoformat("2026-03-02T09:00:00+07:00")  # a Monday in lesson hours
MON_1200 = datetime.fromisoformat("2026-03-02T12:00:00+07:00")  # lunch break
HOLIDAY = datetime.fromisoformat("2026-09-02T09:00:00+07:00")  # National Day (a Wednesday)
EXAM_SAT = datetime.fromisoformat("2026-06-13T09:00:00+07:00")  # Saturday exam day
SAT = datetime.fromisoformat("2026-06-20T09:00:00+07:00")


@pytest.fixture(scope="module")
def school():
    return compile_policy(POLICY / "school.yaml")


@pytest.fixture(scope="module")
def isp():
    return compile_policy(POLICY / "isp.yaml")


SCHOOL = [
    # client, name, qtype, time, action, tier, category, target
    ("10.1.4.20", "www.google.com.vn", 1, MON_1200, Action.REWRITE, Tier.SAFESEARCH, None,
     "forcesafesearch.google.com"),
    ("10.1.4.20", "www.google.com", 65, MON_1200, Action.REWRITE, Tier.SAFESEARCH, None,
     "forcesafesearch.google.com"),
    ("10.1.4.20", "www.google.com", 15, MON_1200, Action.NODATA, Tier.SAFESEARCH, None, None),
    ("10.1.4.20", "www.youtube.com", 28, MON_1200, Action.REWRITE, Tier.SAFESEARCH, None,
     "restrict.youtube.com"),
    ("10.2.0.7", "m.youtube.com", 1, MON_1200, Action.REWRITE, Tier.SAFESEARCH, None,
     "restrictmoderate.youtube.com"),
    ("10.9.0.5", "www.bing.com", 1, MON_1200, Action.REWRITE, Tier.SAFESEARCH, None,
     "strict.bing.com"),
    ("10.9.0.5", "www.youtube.com", 1, MON_1200, Action.REWRITE, Tier.SAFESEARCH, None,
     "restrictmoderate.youtube.com"),
    ("10.1.4.20", "www.facebook.com", 1, MON_1200, Action.BLOCK, Tier.CATEGORY, "social", None),
    ("10.2.0.7", "www.facebook.com", 1, MON_0900, Action.BLOCK, Tier.SCHEDULE, "social", None),
    ("10.2.0.7", "www.facebook.com", 1, MON_1200, Action.ALLOW, Tier.DEFAULT, None, None),
    ("10.2.0.7", "www.facebook.com", 1, HOLIDAY, Action.ALLOW, Tier.DEFAULT, None, None),
    ("10.2.0.7", "www.facebook.com", 1, EXAM_SAT, Action.BLOCK, Tier.SCHEDULE, "social", None),
    ("10.2.0.7", "www.facebook.com", 1, SAT, Action.ALLOW, Tier.DEFAULT, None, None),
    ("10.3.0.9", "www.facebook.com", 65, MON_0900, Action.BLOCK, Tier.SCHEDULE, "social", None),
    ("10.9.0.5", "www.facebook.com", 1, MON_0900, Action.ALLOW, Tier.DEFAULT, None, None),
    ("10.99.1.1", "www.facebook.com", 1, MON_1200, Action.BLOCK, Tier.CATEGORY, "social", None),
    ("192.0.2.1", "www.facebook.com", 1, MON_1200, Action.BLOCK, Tier.CATEGORY, "social", None),
    ("10.9.0.5", "mandated-example.com", 1, MON_1200, Action.BLOCK, Tier.MANDATED,
     "mandated", None),
    ("10.9.0.5", "warning-example.org", 1, MON_1200, Action.REWRITE, Tier.MANDATED, "mandated",
     "notice.example.gov"),
    ("10.1.4.20", "olm.vn", 1, MON_0900, Action.ALLOW, Tier.ALLOW_LIST, None, None),
    ("10.1.4.20", "use-application-dns.net", 1, MON_1200, Action.NXDOMAIN, Tier.BYPASS, None,
     None),
    ("10.9.0.5", "mask-h2.icloud.com", 1, MON_1200, Action.NXDOMAIN, Tier.BYPASS, None, None),
    ("10.9.0.5", "_dns.resolver.arpa", 64, MON_1200, Action.NODATA, Tier.BYPASS, None, None),
    ("10.1.4.20", "example.com", 1, MON_0900, Action.ALLOW, Tier.DEFAULT, None, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("client", "name", "qtype", "when", "action", "tier", "category", "target"), SCHOOL
)
def test_school_table(school, client, name, qtype, when, action, tier, category, target) -> None:
    got = decide(school, client, name, qtype, when)
    assert (got.action, got.tier, got.category, got.target) == (action, tier, category, target)
    assert got.profile == school.profile_for(client)


def test_school_plan(school) -> None:
    assert school.profile_for("10.1.200.3") == "primary"
    assert school.profile_for("10.2.0.1") == "lower-secondary"
    assert school.profile_for("10.3.0.1") == "upper-secondary"
    assert school.profile_for("10.9.9.9") == "teachers"
    assert school.profile_for("10.99.0.1") == "guests"
    assert school.profile_for("not-an-ip") == "guests"
    assert school.profiles["teachers"].log is False
    assert school.check_expectations() == []


def test_block_decision_details(school) -> None:
    memo = DecisionMemo(school)
    got = decide(school, "10.1.4.20", "www.facebook.com", 1, MON_1200, memo=memo)
    assert got.category == "social" and got.rule is None  # shared per category: no per-name rule
    assert got.block_mode.value == "blockpage" and got.ttl == 60
    assert decide(school, "10.1.4.20", "www.tiktok.com", 1, MON_1200, memo=memo) is got
    report = explain_report(school, "10.1.4.20", "www.facebook.com", "A", MON_1200, rule_line)
    assert report["rule"] == "facebook.com" and report["source"].endswith("core/social.txt")
    assert report["line"] > 0
    guest = decide(school, "10.99.0.1", "www.facebook.com", 1, MON_1200)
    assert guest.block_mode.value == "nxdomain"


def test_allow_is_shared_and_time_forms_agree(school) -> None:
    a = decide(school, "10.1.4.20", "example.com", 1, MON_1200)
    b = decide(school, "10.1.4.20", "other.example", 28, MON_1200.timestamp())
    assert a is b
    naive = MON_0900.replace(tzinfo=None)  # wall-clock time in the policy's zone
    utc = MON_0900.astimezone(UTC)
    for when in (naive, utc, utc.timestamp()):
        assert decide(school, "10.2.0.7", "www.facebook.com", 1, when).tier is Tier.SCHEDULE


def test_isp_ecs_only_from_trusted_forwarders(isp) -> None:
    assert isp.profile_for("100.64.200.1") == "family"
    assert isp.profile_for("100.64.1.1") == "standard"
    assert isp.profile_for("192.0.2.53", ecs="100.64.200.0/24") == "family"
    assert isp.profile_for("100.64.1.1", ecs="100.64.200.0/24") == "standard"
    assert isp.profile_for("2001:db8:1000::5") == "family"
    assert isp.profile_for("2001:db8:2000::5") == "standard"
    std = decide(isp, "100.64.1.1", "use-application-dns.net", 1, MON_1200)
    assert std.action is Action.ALLOW  # `bypass: false` for the standard profile
    assert decide(isp, "100.64.1.1", "banned.example.net", 1, MON_1200).tier is Tier.MANDATED
    assert isp.check_expectations() == []


def test_isp_overnight_schedule(isp) -> None:
    night = datetime.fromisoformat("2026-03-02T23:30:00+07:00")
    morning = datetime.fromisoformat("2026-03-03T05:59:00+07:00")
    day = datetime.fromisoformat("2026-03-03T06:00:00+07:00")
    got = [
        decide(isp, "198.51.100.9", "www.roblox.com", 1, t).action for t in (night, morning, day)
    ]
    assert got == [Action.BLOCK, Action.BLOCK, Action.ALLOW]


def test_precedence_table_order() -> None:
    assert [stage.tier for stage in PRECEDENCE] == [
        Tier.MANDATED, Tier.BYPASS, Tier.ALLOW_LIST, Tier.DENY_LIST, Tier.CATEGORY,
        Tier.SCHEDULE, Tier.SAFESEARCH,
    ]  # fmt: skip
    # Only the mandated list's blocks hold for SVCB/HTTPS with `bypass.https_svcb` off.
    assert [stage.tier for stage in PRECEDENCE if stage.svcb] == [Tier.MANDATED]


PRECEDENCE_POLICY = """
clients: {default: p}
profiles:
  p:
    age: 6-10
    allow: [facebook.com, mandated-example.com, use-application-dns.net, "=www.google.com"]
    deny: [ok.example, facebook.com, "*.allowed.example"]
    keywords: [casino]
    schedules: [always]
schedules:
  always: {windows: ["00:00-24:00"], block: [games]}
mandated:
  sources: [{id: m, path: MANDATED, format: rpz}]
lists: {catalogue_sources: false, dir: LISTS}
"""


@pytest.mark.parametrize(
    ("name", "action", "tier"),
    [
        ("mandated-example.com", Action.BLOCK, Tier.MANDATED),  # 1 beats allow
        ("use-application-dns.net", Action.NXDOMAIN, Tier.BYPASS),  # 2 beats allow
        ("www.facebook.com", Action.ALLOW, Tier.ALLOW_LIST),  # 3 beats deny and category
        ("www.google.com", Action.REWRITE, Tier.SAFESEARCH),  # allowed, still safe search
        ("ok.example", Action.BLOCK, Tier.DENY_LIST),  # 4
        ("a.allowed.example", Action.BLOCK, Tier.DENY_LIST),  # `*.d` = below d only
        ("allowed.example", Action.ALLOW, Tier.DEFAULT),
        ("pornhub.com", Action.BLOCK, Tier.CATEGORY),  # 5
        ("best-casino-online.example", Action.BLOCK, Tier.KEYWORD),  # 5 keywords
        ("roblox.com", Action.BLOCK, Tier.SCHEDULE),  # 6
        ("www.bing.com", Action.REWRITE, Tier.SAFESEARCH),  # 7
        ("example.org", Action.ALLOW, Tier.DEFAULT),  # 8
    ],
)
def test_precedence_rows(tmp_path, name, action, tier) -> None:
    text = PRECEDENCE_POLICY.replace("MANDATED", str(POLICY / "mandated.example.rpz"))
    path = tmp_path / "p.yaml"
    path.write_text(text.replace("LISTS", str(tmp_path / "lists")))
    snap = compile_policy(path)
    got = decide(snap, "10.0.0.1", name, 1, MON_1200)
    assert (got.action, got.tier) == (action, tier)
