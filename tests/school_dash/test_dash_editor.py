"""The policy editor through the admin API: an edit saved keeps every comment and reloads, a bad
edit is refused with `check`'s file:line:column message and nothing is saved, undo restores
the file and reloads, a stale form or a bundle is refused. The check runs in a real child."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dash_support import TZ, Dash
from test_dash_api import client_for

from resolver.build import policyedit
from resolver.policy.explain import explain_report
from resolver.yamlsource import load_yaml


def comments(text: str) -> list[str]:
    return [line[line.index("#") :] for line in text.splitlines() if "#" in line]


async def post(client: Any, path: str, body: dict[str, Any], status: int) -> dict[str, Any]:
    resp = await client.post(path, json=body)
    data = await resp.json()
    assert resp.status == status, data
    return data


async def test_edit_check_save_keeps_comments_reloads_and_undo_restores(aiohttp_client, dash):
    client = await client_for(aiohttp_client, dash)
    original = dash.policy.read_text()
    loaded = await (await client.get("/api/v1/policy")).json()
    assert loaded["editable"] and loaded["file"] == str(dash.policy) and loaded["versions"] == []
    primary = next(p for p in loaded["model"]["profiles"] if p["id"] == "primary")
    assert primary["allow"] == ["olm.vn", "hocmai.vn"] and "social" in primary["categories"]
    assert loaded["model"]["sample_clients"]["primary"] == "10.1.0.1"
    edit = {"profiles": {"primary": {"deny": ["tiktok.com"], "allow": ["olm.vn", "hocmai.vn",
                                                                     "violympic.vn"]}},
            "schedules": {"lessons": {"windows": ["mon-fri 07:00-11:30"]}}}  # fmt: skip
    samples = [{"client": "10.1.0.1", "name": "www.tiktok.com"},
               {"client": "10.1.0.1", "name": "violympic.vn"}]  # fmt: skip
    body = {"base": loaded["sha256"], "edits": edit, "samples": samples}

    preview = await post(client, "/api/v1/policy/preview", body, 200)
    assert preview["ok"] and dash.policy.read_text() == original  # a preview saves nothing
    explained = {x["name"]: x for x in preview["explain"]}
    assert explained["www.tiktok.com"]["action"] == "block"
    assert explained["www.tiktok.com"]["tier"] == "deny"
    assert explained["violympic.vn"]["action"] == "allow"
    assert "+    deny: [tiktok.com]" in preview["diff"]
    assert "-      - mon-fri 13:30-17:00" in preview["diff"]

    saved = await post(client, "/api/v1/policy", body, 200)
    assert saved["saved"] and saved["reload"]["ok"] and dash.control.reloaded == 1
    text = dash.policy.read_text()
    assert comments(text) == comments(original)  # every comment kept, in order
    assert "allow: [olm.vn, hocmai.vn, violympic.vn]" in text and "deny: [tiktok.com]" in text
    assert saved["sha256"] == policyedit.digest(text)
    data = load_yaml(dash.policy).data  # the resolver's own loader reads it back
    assert data["profiles"]["primary"]["deny"] == ["tiktok.com"]
    assert data["schedules"]["lessons"]["windows"] == ["mon-fri 07:00-11:30"]
    served = dash.control.snapshot  # what the reload put in force
    assert (
        explain_report(served, "10.1.0.1", "www.tiktok.com", "A", datetime.now(TZ))["tier"]
        == "deny"
    )
    versions = (await (await client.get("/api/v1/policy")).json())["versions"]
    assert (
        len(versions) == 1 and policyedit.read_version(dash.policy, versions[0]["id"]) == original
    )

    undone = await post(client, "/api/v1/policy/undo", {"base": saved["sha256"]}, 200)
    assert undone["restored"] == versions[0]["id"] and undone["reload"]["ok"]
    assert dash.policy.read_text() == original and dash.control.reloaded == 2
    await post(client, "/api/v1/policy/undo", {"base": policyedit.digest(original)}, 409)


async def test_a_bad_edit_is_refused_with_the_check_message_and_nothing_is_saved(
    aiohttp_client, dash: Dash
):
    client = await client_for(aiohttp_client, dash)
    original = dash.policy.read_bytes()
    base = policyedit.digest(original.decode())
    bad = {"profiles": {"primary": {"allow": ["olm.vn", "hocmai.vn", "not a domain!"]}}}
    refused = await post(client, "/api/v1/policy", {"base": base, "edits": bad}, 422)
    assert not refused["ok"] and not refused["saved"]
    (error,) = [p for p in refused["problems"] if p["severity"] == "error"]
    line = next(i for i, text in enumerate(original.decode().splitlines(), 1) if "allow:" in text)
    assert error["file"] == str(dash.policy) and error["line"] == line
    assert "not a domain!" in error["message"]
    assert dash.policy.read_bytes() == original and dash.control.reloaded == 0
    assert policyedit.list_versions(dash.policy) == []
    assert not list(dash.policy.parent.glob(".*trial*"))  # the trial copy is gone
    # A schedule a profile still names cannot go: check says where it is named.
    gone = await post(client, "/api/v1/policy",
                      {"base": base, "edits": {"remove_schedules": ["always"]}}, 422)  # fmt: skip
    assert any("unknown schedule 'always'" in p["message"] for p in gone["problems"])
    # The policy's own `expect` samples are part of the check.
    unblocked = await post(
        client,
        "/api/v1/policy/preview",
        {
            "base": base,
            "edits": {"profiles": {"primary": {"allow": ["olm.vn", "hocmai.vn", "facebook.com"]}}},
        },
        200,
    )
    assert not unblocked["ok"] and "www.facebook.com" in unblocked["expect_failures"][0]
    assert dash.policy.read_bytes() == original


async def test_stale_forms_malformed_edits_and_bundles_are_refused(aiohttp_client, dash):
    client = await client_for(aiohttp_client, dash)
    base = policyedit.digest(dash.policy.read_text())
    stale = {"base": "0" * 64, "edits": {"profiles": {"primary": {"log": False}}}}
    assert "changed since" in (await post(client, "/api/v1/policy", stale, 409))["error"]
    for edits in ({"profiles": {"nobody": {}}}, {"profiles": {"primary": {"colour": "red"}}},
                  {"profiles": {"primary": {"allow": "olm.vn"}}},
                  {"profiles": {"primary": {"block_mode": "explode"}}}, {"drop": 1}):  # fmt: skip
        await post(client, "/api/v1/policy/preview", {"base": base, "edits": edits}, 400)
    await post(client, "/api/v1/policy/preview", {"edits": {}}, 400)
    status = dash.control.status
    dash.control.status = lambda: status() | {"bundle": {"url": "https://policy.example/"}}
    loaded = await (await client.get("/api/v1/policy")).json()
    assert not loaded["editable"] and "bundle" in loaded["reason"]
    await post(client, "/api/v1/policy", {"base": base, "edits": {}}, 409)


async def test_services_blocked_and_allowed_per_profile_and_schedule_unknown_ids_refused(
    aiohttp_client, dash: Dash
):
    client = await client_for(aiohttp_client, dash)
    original = dash.policy.read_text()
    loaded = await (await client.get("/api/v1/policy")).json()
    catalogue = {s["id"]: s for s in loaded["services"]}
    assert catalogue["tiktok"]["name_en"] == "TikTok" and "lien-quan" in catalogue
    guests = next(p for p in loaded["model"]["profiles"] if p["id"] == "guests")
    assert guests["block_services"] == guests["allow_services"] == []
    edit = {"profiles": {"guests": {"block_services": ["roblox"]},
                         "primary": {"allow_services": ["discord"]}},
            "schedules": {"lessons": {"block_services": ["zalo"]}}}  # fmt: skip
    samples = [{"client": "10.99.0.7", "name": "www.roblox.com"},
               {"client": "10.1.0.1", "name": "discord.com"}]  # fmt: skip
    body = {"base": loaded["sha256"], "edits": edit, "samples": samples}
    saved = await post(client, "/api/v1/policy", body, 200)
    explained = {x["name"]: x for x in saved["explain"]}
    assert explained["www.roblox.com"]["action"] == "block"
    assert explained["www.roblox.com"]["service"] == "roblox"
    assert explained["discord.com"]["action"] == "allow"
    assert saved["saved"] and saved["reload"]["ok"]
    text = dash.policy.read_text()
    assert comments(text) == comments(original)
    assert "block_services: [roblox]" in text and "allow_services: [discord]" in text
    data = load_yaml(dash.policy).data
    assert data["schedules"]["lessons"]["block_services"] == ["zalo"]
    served = explain_report(dash.control.snapshot, "10.99.0.7", "www.roblox.com", "A",
                            datetime.now(TZ))  # fmt: skip
    assert served["action"] == "block" and served["service"] == "roblox"  # in force
    again = await (await client.get("/api/v1/policy")).json()
    guests = next(p for p in again["model"]["profiles"] if p["id"] == "guests")
    assert guests["block_services"] == ["roblox"]

    # An id the catalogue does not know: check's message, where it is written; nothing saved.
    typo = {"profiles": {"guests": {"block_services": ["roblox", "tiktokk"]}}}
    refused = await post(client, "/api/v1/policy", {"base": saved["sha256"], "edits": typo}, 422)
    (error,) = [p for p in refused["problems"] if p["severity"] == "error"]
    assert "unknown service 'tiktokk'" in error["message"] and "tiktok" in error["message"]
    assert error["file"] == str(dash.policy)
    assert error["line"] == next(
        i for i, line in enumerate(text.splitlines(), 1) if "block_services: [roblox]" in line
    )
    assert dash.policy.read_text() == text
