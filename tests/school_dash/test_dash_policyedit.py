"""The YAML round-trip of the policy editor: an edit changes only what it changes, comments and
layout stay, the result reads the same with the resolver's own loader; versions for undo."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from dash_support import POLICY

from resolver.build import policyedit
from resolver.build.policyedit import EditError, PolicyChanged
from resolver.yamlsource import Document, load_yaml

REPO = Path(__file__).resolve().parents[2]
TEST_POLICY = (
    POLICY.replace("@TOKEN@", "a" * 16)
    .replace("@GOOD@", "http://x/")
    .replace("@DEAD@", "http://y/")
)


def changed_lines(old: str, new: str) -> list[str]:
    return [line for line in policyedit.diff(old, new, "p").splitlines()
            if line[:1] in "+-" and line[:3] not in ("+++", "---")]  # fmt: skip


def read(text: str, tmp_path: Path) -> Document:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return load_yaml(path)


@pytest.mark.parametrize("name", ["default.yaml", "school.yaml", "isp.yaml"])
def test_the_shipped_policies_go_through_unchanged(name: str) -> None:
    text = (REPO / "policy" / name).read_text()
    model = policyedit.model(text)
    profiles = {p["id"]: {k: p[k] for k in policyedit.PROFILE_FIELDS} for p in model["profiles"]}
    schedules = {
        s["name"]: {k: s[k] for k in policyedit.SCHEDULE_FIELDS} for s in model["schedules"]
    }
    same = {"profiles": profiles, "schedules": schedules}
    assert policyedit.apply_edits(text, same) == text  # the forms as loaded: no change at all


@pytest.mark.parametrize("text", [
    "profiles:\n    p:\n        age: 6-10\n        allow:\n"
    "            - x   # c\n            - y\n",
    "profiles:\n  p:\n    age: 6-10\n    allow:\n    - x   # c\n    - y\n",
    "profiles:\n    p:\n        age: 6-10\n        allow:\n          - x   # c\n          - y\n",
])  # fmt: skip
def test_the_files_own_indentation_is_found(text: str) -> None:
    assert policyedit.apply_edits(text, {}) == text
    new = policyedit.apply_edits(text, {"profiles": {"p": {"allow": ["x", "y", "z"]}}})
    assert changed_lines(text, new) == ["+" + text.splitlines()[-1].replace("y", "z")]


def test_an_edit_changes_only_its_lines_and_reads_back_the_same(tmp_path: Path) -> None:
    edits = {
        "profiles": {
            "primary": {"allow": ["hocmai.vn", "violympic.vn"], "block_mode": "nxdomain",
                        "safe_search": {"level": "strict", "youtube": "moderate"}},
            "teachers": {"log": True, "description": "Giáo viên"},
            "guests": {"categories": sorted(policyedit.effective_categories(
                {"age": "15-17", "block": ["social", "games"]}))},
        },
        "schedules": {
            "lessons": {"except": ["2026-09-02", "2026-12-24"], "internet": "off"},
            "exams": {"windows": ["sat 07:00-11:00"], "block": ["games"]},
        },
    }  # fmt: skip
    new = policyedit.apply_edits(TEST_POLICY, edits)
    changed = changed_lines(TEST_POLICY, new)
    assert changed == [
        "-    safe_search: {level: strict, youtube: strict}",
        "+    safe_search: {level: strict, youtube: moderate}",
        "-    allow: [olm.vn, hocmai.vn]          # learning sites the school approved",
        "-    block_mode: blockpage",
        "+    allow: [hocmai.vn, violympic.vn]    # learning sites the school approved",
        "+    block_mode: nxdomain",
        "-    log: false                           # staff queries are not logged",
        "+    description: Giáo viên",
        "+    log: true                            # staff queries are not logged",
        "-    block: [social]",
        "+    block: [social, games]",
        "+    internet: off",
        "+      - 2026-12-24",
        "+  exams:",
        "+    windows: [sat 07:00-11:00]",
        "+    block: [games]",
    ]
    data = read(new, tmp_path).data
    assert data["schedules"]["lessons"]["except"][-1].isoformat() == "2026-12-24"  # a date
    assert data["schedules"]["lessons"]["internet"] == "off"  # a string, as the schema wants
    assert data["profiles"]["teachers"]["log"] is True
    assert data["schedules"]["exams"] == {"windows": ["sat 07:00-11:00"], "block": ["games"]}
    assert policyedit.model(new)["profiles"][2]["block"] == ["social", "games"]


def test_categories_become_block_and_unblock_relative_to_the_age_mode() -> None:
    base = policyedit.effective_categories({"age": "15-17", "block": ["social"]})  # as written
    assert "dating" in base and "games" not in base
    wanted = (base - {"dating"}) | {"games"}
    new = policyedit.apply_edits(TEST_POLICY, {"profiles": {"guests": {"categories": sorted(
        wanted)}}})  # fmt: skip
    guests = next(p for p in policyedit.model(new)["profiles"] if p["id"] == "guests")
    assert set(guests["categories"]) == wanted
    assert guests["block"] == ["social", "games"] and guests["unblock"] == ["dating"]


def test_new_keys_never_split_a_comment_from_what_it_heads() -> None:
    text = "profiles:\n  a:\n    age: 6-10\n\n# --- schedules of the school ---\nschedules: {}\n"
    new = policyedit.apply_edits(text, {"profiles": {"a": {"deny": ["x.example"]}}})
    assert new == ("profiles:\n  a:\n    deny: [x.example]\n    age: 6-10\n\n"
                   "# --- schedules of the school ---\nschedules: {}\n")  # fmt: skip


@pytest.mark.parametrize("edits", [
    [], {"profiles": {"nobody": {}}}, {"profiles": {"primary": {"age": 7}}},
    {"profiles": {"primary": {"allow": ["a\nb: c"]}}}, {"profiles": {"primary": {"log": "yes"}}},
    {"profiles": {"primary": {"safe_search": {"level": "max"}}}},
    {"schedules": {"lessons": {"internet": "maybe"}}}, {"remove_schedules": ["nope"]},
    {"profiles": {"primary": {"allow": ["x.example"] * 5001}}},
])  # fmt: skip
def test_malformed_edits_are_refused(edits: object) -> None:
    with pytest.raises(EditError):
        policyedit.apply_edits(TEST_POLICY, edits)


def test_a_file_that_does_not_parse_is_an_edit_error() -> None:
    with pytest.raises(EditError, match="does not parse"):
        policyedit.model("profiles: [unclosed\n")


def test_versions_are_kept_pruned_restored_and_guarded(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("v: 0\n")
    os.chmod(policy, 0o640)
    for i in range(1, policyedit.VERSIONS_KEPT + 3):
        before = policy.read_text()
        policyedit.save(policy, f"v: {i}\n", policyedit.digest(before))
    versions = policyedit.list_versions(policy)
    assert len(versions) == policyedit.VERSIONS_KEPT
    newest = versions[0]["id"]
    assert policyedit.read_version(policy, newest) == f"v: {policyedit.VERSIONS_KEPT + 1}\n"
    assert stat.S_IMODE(policy.stat().st_mode) == 0o640  # the file keeps its permissions
    with pytest.raises(PolicyChanged):
        policyedit.save(policy, "v: x\n", policyedit.digest("v: 0\n"))
    policyedit.restore(policy, newest, policyedit.digest(policy.read_text()))
    assert policy.read_text() == f"v: {policyedit.VERSIONS_KEPT + 1}\n"
    assert policyedit.list_versions(policy)[0]["id"] != newest
    for bad in ("../policy", "", "x.yaml", newest + "/"):
        with pytest.raises(KeyError):
            policyedit.read_version(policy, bad)


def test_a_folder_the_service_cannot_write_is_said_so(tmp_path: Path) -> None:
    policy = tmp_path / "ro" / "policy.yaml"
    policy.parent.mkdir()
    policy.write_text("v: 1\n")
    assert policyedit.not_editable(policy) is None
    os.chmod(policy.parent, 0o500)
    try:
        if os.access(policy.parent, os.W_OK):
            pytest.skip("running as root: every folder is writable")
        assert "not writable" in str(policyedit.not_editable(policy))
    finally:
        os.chmod(policy.parent, 0o700)
    assert "does not exist" in str(policyedit.not_editable(tmp_path / "none.yaml"))
