"""The school's admin flows against the real resolver: approvals that end, revoking, pauses,
teachers limited to their classes, and every action in the audit trail.

Time never passes for real: the server's expiry clock is moved (school_support.School.move_clock)
to a few seconds before an entry ends, a reload re-arms the expiry timer, and the test polls
(generous deadline) until the timer's own reload has taken the entry out.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml
from school_support import (
    ALLOWED,
    BANNED,
    BLOCKPAGE,
    SOCIAL,
    TZ,
    VIDEO,
    Api,
    School,
    ask,
    request_unblock,
    wait_for,
)

from resolver.cli import main


def audited(school: School, result: str, entry_id: str) -> dict:
    """The audit row recording `result` for overlay entry `entry_id` (written within a second)."""
    found: list[dict] = []

    def written() -> bool:
        found[:] = [r for r in school.audit() if r["result"] == result and r["source"] == entry_id]
        return bool(found)

    wait_for(written, f"audit row {result} {entry_id}", timeout=15)
    return found[0]


def test_approval_for_one_hour_ends_by_itself(school: School) -> None:
    name = f"hour.{SOCIAL}"
    mine, other = request_unblock(school, name, "10a1"), request_unblock(school, name, "10a2")
    teacher, viewer = school.as_user("lan"), school.as_user("minh")
    assert ask(school, name, "10a1") == BLOCKPAGE
    # The teacher of 10a1 decides for 10a1 only; a viewer decides nothing.
    status, body = teacher.post(f"/api/v1/unblock-requests/{other}/approve", {"minutes": 60})
    assert status == 403 and "10a2" in body["error"]
    assert viewer.post(f"/api/v1/unblock-requests/{mine}/approve")[0] == 403
    assert [r["id"] for r in teacher.get("/api/v1/unblock-requests")[1]["requests"]] == [mine]

    started = time.time()
    status, body = teacher.post(f"/api/v1/unblock-requests/{mine}/approve", {"minutes": 60})
    assert status == 200 and body["status"] == "approved" and body["decided_by"] == "lan"
    entry = body["entry"]
    assert body["reload"]["ok"] and entry["by"] == "lan" and entry["request"] == mine
    assert started + 3600 - 5 < entry["until"] < time.time() + 3600 + 5
    assert ask(school, name, "10a1") == ALLOWED and ask(school, name, "10a2") == BLOCKPAGE
    listed = viewer.get("/api/v1/overlay")[1]["entries"]
    assert [e["id"] for e in listed] == [entry["id"]] and listed[0]["until_text"].endswith("+07:00")

    # Five seconds before the hour is up; the reload re-arms the timer, which ends it.
    school.move_clock(entry["until"] - time.time() - 5)
    school.reload()
    wait_for(lambda: ask(school, name, "10a1") == BLOCKPAGE, "the approval to end")
    assert teacher.get("/api/v1/overlay")[1]["entries"] == []
    assert entry["id"] not in school.overlay.read_text()  # gone from the file too
    assert audited(school, "approved", entry["id"])["cause"] == "lan"
    assert audited(school, "expired", entry["id"])["cause"] == "expiry"
    # The reload's own row follows once it is done (the query log writes within a second).
    wait_for(
        lambda: any(r["cause"] == "expiry" for r in school.audit("reload")), "the expiry reload row"
    )


def test_until_the_end_of_today_in_ho_chi_minh(school: School) -> None:
    name = f"today.{SOCIAL}"
    request_id = request_unblock(school, name, "10a1")
    teacher = school.as_user("lan")
    now = datetime.now(ZoneInfo(TZ))
    status, body = teacher.post(
        f"/api/v1/unblock-requests/{request_id}/approve", {"until": "today"}
    )
    assert status == 200, body
    midnight = (now + timedelta(days=1)).date().isoformat() + "T00:00:00+07:00"
    if now.hour == 23 and now.minute == 59:  # the test ran across midnight: either is right
        assert body["entry"]["until_text"] >= midnight
    else:
        assert body["entry"]["until_text"] == midnight
    assert ask(school, name, "10a1") == ALLOWED
    # One second past midnight in Hanoi: the next reload leaves it out.
    school.move_clock(body["entry"]["until"] - time.time() + 1)
    school.reload()
    assert ask(school, name, "10a1") == BLOCKPAGE


def test_revoke_ends_an_approval_at_once(
    school: School, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"revoke.{SOCIAL}"
    request_id = request_unblock(school, name, "10a1")
    teacher, admin = school.as_user("lan"), Api(school, token=True)
    status, body = teacher.post(f"/api/v1/unblock-requests/{request_id}/approve")  # permanent
    assert status == 200 and body["entry"]["until"] is None
    assert ask(school, name, "10a1") == ALLOWED
    # An admin's approval for the other class: the teacher can neither see nor revoke it.
    other = request_unblock(school, name, "10a2")
    theirs = admin.post(f"/api/v1/unblock-requests/{other}/approve", {"until": "2099-01-01"})
    assert theirs[0] == 200 and theirs[1]["entry"]["until_text"] == "2099-01-02T00:00:00+07:00"
    assert [e["profile"] for e in teacher.get("/api/v1/overlay")[1]["entries"]] == ["10a1"]
    status, _ = teacher.call("DELETE", f"/api/v1/overlay/{theirs[1]['entry']['id']}")
    assert status == 403
    status, gone = teacher.call("DELETE", f"/api/v1/overlay/{body['entry']['id']}")
    assert status == 200 and gone["entry"]["target"] == name and gone["reload"]["ok"]
    assert ask(school, name, "10a1") == BLOCKPAGE  # the API returned after the reload
    assert ask(school, name, "10a2") == ALLOWED
    assert teacher.call("DELETE", f"/api/v1/overlay/{body['entry']['id']}")[0] == 404
    row = audited(school, "revoked", body["entry"]["id"])
    assert row["cause"] == "lan" and row["detail"].startswith(f"profile 10a1: allow name {name} ")
    # `safe-resolver audit` prints it as a line: what, by whom, the entry and its id.
    assert main(["audit", "--db", str(school.db)]) == 0
    line = f"overlay  revoked  by lan  {row['detail']}  id {body['entry']['id']}"
    assert any(printed.endswith(line) for printed in capsys.readouterr().out.splitlines())


def test_a_pause_lets_a_category_through_for_the_lesson_and_ends(school: School) -> None:
    teacher = school.as_user("lan")
    assert ask(school, VIDEO, "10a1") == BLOCKPAGE  # the lesson schedule blocks video
    status, body = teacher.post(
        "/api/v1/pauses", {"profile": "10a2", "category": "video", "minutes": 45}
    )
    assert status == 403
    for bad, why in (
        ({"category": "mandated"}, "not blocked"),
        ({"category": "adult"}, "not blocked"),
        ({"service": "youtube"}, "not blocked"),
        ({"name": BANNED}, "mandated list"),
    ):
        status, body = teacher.post("/api/v1/pauses", {"profile": "10a1", "minutes": 45} | bad)
        assert status == 400 and why in body["error"], body
    status, body = teacher.post("/api/v1/pauses", {"profile": "10a1", "category": "video"})
    assert status == 400 and "minutes or until" in body["error"]  # a pause always ends

    status, body = teacher.post(
        "/api/v1/pauses", {"profile": "10a1", "category": "video", "minutes": 45, "note": "clip"}
    )
    assert status == 201 and body["reload"]["ok"]
    pause = body["entry"]
    assert (pause["kind"], pause["target_kind"], pause["target"]) == ("pause", "category", "video")
    assert ask(school, VIDEO, "10a1") == ALLOWED and ask(school, VIDEO, "10a2") == BLOCKPAGE
    assert ask(school, SOCIAL, "10a1") == BLOCKPAGE  # only what was paused
    saved = yaml.safe_load(school.overlay.read_text())["pause"]
    assert [(p["profile"], p["category"], p["by"]) for p in saved] == [("10a1", "video", "lan")]

    school.move_clock(pause["until"] - time.time() - 5)
    school.reload()
    wait_for(lambda: ask(school, VIDEO, "10a1") == BLOCKPAGE, "the pause to end")
    assert audited(school, "paused", pause["id"])["category"] == "video"
    assert audited(school, "expired", pause["id"])["detail"].startswith("profile 10a1: pause")


def test_rejections_and_mandated_refusals(school: School) -> None:
    teacher = school.as_user("lan")
    banned = request_unblock(school, BANNED, "10a1")
    status, body = teacher.post(f"/api/v1/unblock-requests/{banned}/approve")
    assert status == 400 and "mandated list" in body["error"]
    status, body = teacher.post(f"/api/v1/unblock-requests/{banned}/reject")
    assert status == 200 and body["status"] == "rejected" and body["decided_by"] == "lan"
    wait_for(
        lambda: any(r["result"] == "rejected" and BANNED in r["detail"] for r in school.audit()),
        "the rejection's audit row",
    )


def test_logins_roles_and_the_login_page(school: School) -> None:
    nobody = Api(school)
    # require_login: loopback too. A browser is sent to the log-in page, a script gets JSON.
    status, _ = nobody.get("/dashboard", headers={"Accept": "text/html,application/xhtml+xml"})
    assert status == 303
    status, body = nobody.get("/api/v1/stats", headers={"Accept": "application/json"})
    assert status == 401 and body == {"error": "authentication required"}
    assert nobody.login("lan", "wrong password!")[0] == 401
    assert nobody.login("nobody", "wrong password!")[0] == 401
    me = school.as_user("lan").get("/api/v1/me")[1]
    assert (me["user"], me["role"], me["profiles"]) == ("lan", "teacher", ["10a1"])
    assert (
        "POST /api/v1/pauses" in me["permissions"] and "GET /api/v1/stats" not in me["permissions"]
    )
    assert school.as_user("lan").get("/api/v1/stats")[0] == 403
    assert school.as_user("minh").get("/api/v1/stats")[0] == 200
    assert school.as_user("minh").post("/api/v1/reload")[0] == 403
    script = Api(school, token=True)
    assert script.get("/api/v1/me")[1]["role"] == "admin"
    metrics = script.get("/metrics")[1]
    assert 'safe_resolver_admin_logins_total{result="wrong_password"} 1.0' in metrics
    assert 'safe_resolver_admin_logins_total{result="unknown_user"} 1.0' in metrics
