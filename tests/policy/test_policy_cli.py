"""The admin commands run as the installed console script, exit codes and output checked."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("safe-resolver")
BAD = ROOT / "tests" / "data" / "policies" / "bad"


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=60)  # fmt: skip


def test_check_good_and_bad() -> None:
    ok = run("check", "policy/school.yaml")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK (5 profiles" in ok.stdout
    bad = run("check", str(BAD / "unknown_key.yaml"))
    assert bad.returncode == 1
    assert (
        f'{BAD}/unknown_key.yaml:6:5: unknown key \'blok\' in "kids" (did you mean "block"?)'
        in (bad.stdout)
    )
    assert "Traceback" not in bad.stderr
    js = json.loads(run("check", "--json", str(BAD / "yaml_syntax.yaml")).stdout)
    assert js["ok"] is False and js["problems"][0]["line"] == 5


def test_explain_text_and_json() -> None:
    out = run("explain", "--policy", "policy/default.yaml", "--client", "127.0.0.1",
              "www.pornhub.com")  # fmt: skip
    assert out.returncode == 0
    assert "decision block (tier category, category adult)" in out.stdout
    assert "core/adult.txt:" in out.stdout  # the list and its line
    js = json.loads(run("explain", "--policy", "policy/school.yaml", "--client", "10.2.3.4",
                        "--at", "2026-03-02T09:00", "--type", "AAAA", "--json",
                        "WWW.Facebook.com.").stdout)  # fmt: skip
    assert js["profile"] == "lower-secondary" and js["schedules_active"] == ["lessons"]
    assert (js["action"], js["tier"], js["category"]) == ("block", "schedule", "social")
    assert js["line"] > 0
    yt = json.loads(run("explain", "--policy", "policy/school.yaml", "--client", "10.1.0.9",
                        "--json", "m.youtube.com").stdout)  # fmt: skip
    assert yt["target"] == "restrict.youtube.com"


def test_policy_test_pass_and_fail(tmp_path) -> None:
    table = tmp_path / "expect.yaml"
    table.write_text(
        "- {client: 10.1.0.9, name: www.facebook.com, expect: block, category: social}\n"
        "- {client: 10.9.0.9, name: www.facebook.com, at: '2026-03-02T09:00', expect: allow}\n"
    )
    ok = run("policy", "test", "policy/school.yaml", str(table))
    assert ok.returncode == 0 and "2 passed, 0 failed" in ok.stdout
    table.write_text("expect:\n  - {client: 10.9.0.9, name: www.facebook.com, expect: block}\n")
    fail = run("policy", "test", "policy/school.yaml", str(table))
    assert fail.returncode == 1 and "FAIL" in fail.stdout and "expect.yaml:2:5" in fail.stdout


def test_lists_compile() -> None:
    out = run("lists", "compile", "--policy", "policy/isp.yaml")
    assert out.returncode == 0, out.stderr
    assert "rules in" in out.stdout and "mandated" in out.stdout
