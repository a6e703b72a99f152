"""The users file: weak hash formats refused and every mistake reported as file:line:column; the
`safe-resolver user` command run for real."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type

from resolver.http.users import hash_password, load_users
from resolver.yamlsource import ConfigError

GOOD = hash_password("a long password 1")
WEAK = {
    "$2b$12$KIXQJ9sQh5Nn0s9wE0fXeO0Q0Z8b1xgq6Pq1v4m2wq1mQ9iXh6nUe": "bcrypt",
    "$6$salt$IxDD3jeSOb5eB1CX5LBsqZFVkJdido3OUILO5Ifz5iwMuTS4XMS130MTSuDDl3aCI6WouIL9AjRbLCelDCy"
    ".g.": "SHA-512-crypt",
    "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8": "bare hex digest",
    "hunter2hunter2": "plain text",
    PasswordHasher(type=Type.I).hash("a long password 1"): "argon2i, not argon2id",
    PasswordHasher(memory_cost=8192, time_cost=1).hash("a long password 1"): "too cheap",
}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("hashed", list(WEAK))
def test_weak_hash_formats_are_refused_with_their_place(tmp_path: Path, hashed: str):
    path = write(
        tmp_path / "users.yaml",
        f"users:\n  - name: lan\n    role: admin\n    password_hash: '{hashed}'\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_users(path)
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.column) == (str(path), 4, 20)
    assert WEAK[hashed] in problem.message


def test_mistakes_are_reported_as_file_line_column(tmp_path: Path):
    path = write(
        tmp_path / "users.yaml",
        f"""\
users:
  - name: lan
    role: teacher
    password_hash: "{GOOD}"
  - name: lan
    role: techer
    profiles: [10a1]
    password_hash: "{GOOD}"
  - name: token
    role: viewer
    profiles: [10a1]
    pasword_hash: x
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_users(path)
    got = {(p.line, p.column): p.message for p in caught.value.problems}
    assert "needs `profiles`" in got[(2, 5)]
    assert "listed twice" in got[(5, 11)]
    assert "one of admin, teacher, viewer" in got[(6, 11)] and '"teacher"' in got[(6, 11)]
    assert "uses for itself" in got[(9, 11)]
    assert "profiles are for teachers" in got[(11, 15)]
    assert "unknown key 'pasword_hash'" in got[(12, 5)] and "password_hash" in got[(12, 5)]
    assert "needs the key 'password_hash'" in got[(9, 5)]


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resolver", "user", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_user_add_passwd_remove_list(tmp_path: Path):
    path = tmp_path / "users.yaml"
    file = ("--file", str(path))
    done = cli(
        "add",
        "lan",
        "--role",
        "teacher",
        "--profile",
        "10a1",
        "--profile",
        "10a2",
        *file,
        "--password-stdin",
        stdin="teacher password 1\n",
    )
    assert done.returncode == 0, done.stderr
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert (
        cli(
            "add",
            "minh",
            "--role",
            "viewer",
            *file,
            "--password-stdin",
            stdin="viewer password 1\n",
        ).returncode
        == 0
    )
    assert cli("list", *file).stdout.splitlines() == ["lan  teacher  10a1, 10a2", "minh  viewer"]
    refused = (
        cli("add", "lan", "--role", "viewer", *file, "--password-stdin", stdin="x" * 12),
        cli("add", "hoa", "--role", "teacher", *file, "--password-stdin", stdin="x" * 12),
        cli("add", "token", "--role", "admin", *file, "--password-stdin", stdin="x" * 12),
        cli("add", "hoa", "--role", "admin", *file, "--password-stdin", stdin="short\n"),
    )
    assert [r.returncode for r in refused] == [2, 2, 2, 2]
    assert "exists already" in refused[0].stderr and "--profile" in refused[1].stderr
    assert "10 characters" in refused[3].stderr
    before = load_users(path)["lan"].password_hash
    assert (
        cli("passwd", "lan", *file, "--password-stdin", stdin="new password 22\n").returncode == 0
    )
    assert load_users(path)["lan"].password_hash != before
    assert cli("remove", "minh", *file).returncode == 0
    assert list(load_users(path)) == ["lan"]
    assert cli("remove", "minh", *file).returncode == 2


def test_passwd_replaces_a_weak_hash_written_by_hand(tmp_path: Path):
    path = write(
        tmp_path / "users.yaml",
        "users:\n  - {name: lan, role: admin, password_hash: 'hunter2hunter2'}\n",
    )
    assert cli("list", "--file", str(path)).returncode == 0  # the file can still be read
    done = cli("passwd", "lan", "--file", str(path), "--password-stdin", stdin="a long password 1")
    assert done.returncode == 0, done.stderr
    assert load_users(path)["lan"].password_hash.startswith("$argon2id$")


def test_the_server_refuses_to_start_with_a_bad_users_file(tmp_path: Path):
    users = write(
        tmp_path / "users.yaml",
        "users:\n  - {name: lan, role: admin, password_hash: 'hunter2hunter2'}\n",
    )
    config = write(tmp_path / "config.yaml", f"admin:\n  users_file: {users.name}\n")
    done = subprocess.run(
        [sys.executable, "-m", "resolver", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and f"{users}:2:" in done.stderr and "argon2id" in done.stderr
