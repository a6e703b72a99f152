"""The systemd units and `make install`: what systemd-analyze says of the units, and that a
DESTDIR install puts every file where the units look for it, with a working program."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support.resolver_proc import REPO

UNITS = REPO / "systemd"
SERVICES = ["safe-resolver.service", "safe-resolver-lists.service"]
UNIT_FILES = [*SERVICES, "safe-resolver-lists.timer"]
MAX_EXPOSURE = 2.0
SYSTEM_PYTHON = Path("/usr/bin/python3")


def systemd_analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    return exe


def directives(unit: Path, key: str) -> list[str]:
    """The values of `key=` in a unit file, in order."""
    pattern = re.compile(rf"^{re.escape(key)}=(.*)$")
    return [m.group(1) for line in unit.read_text().splitlines() if (m := pattern.match(line))]


@pytest.mark.parametrize("service", SERVICES)
def test_exposure_is_under_two(service: str) -> None:
    """`systemd-analyze security --offline=true` rates each service below 2.0 ("OK")."""
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", "--no-pager", str(UNITS / service)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, f"no exposure level in:\n{result.stdout}\n{result.stderr}"
    failing = "\n".join(line for line in result.stdout.splitlines() if line.startswith("✗"))
    assert float(found.group(1)) < MAX_EXPOSURE, f"{service}: {found.group(1)}\n{failing}"


@dataclass
class Installed:
    root: Path
    output: str

    def unit(self, name: str) -> Path:
        return self.root / "etc/systemd/system" / name

    def program(self, unit: str, key: str = "ExecStart") -> Path:
        """The executable a unit runs, as a path under the install root."""
        (command,) = directives(self.unit(unit), key)
        return self.root / command.split()[0].lstrip("/")


def make_install(root: Path, *extra: str) -> str:
    result = subprocess.run(
        ["make", "--no-print-directory", "install", f"DESTDIR={root}", *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"make install failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """One `make install DESTDIR=...` for the module (it builds the package and its venv)."""
    if not SYSTEM_PYTHON.exists():
        pytest.skip(f"{SYSTEM_PYTHON} missing: `make install` builds the service on it")
    root = tmp_path_factory.mktemp("destdir")
    yield Installed(root, make_install(root))


def test_units_run_the_installed_program(installed: Installed) -> None:
    serve = installed.program("safe-resolver.service")
    assert serve == installed.root / "opt/safe-resolver/bin/safe-resolver"
    assert serve.is_file() and serve.stat().st_mode & 0o111
    assert installed.program("safe-resolver.service", "ExecStartPre") == serve
    # The list updates run the same program, as the same user, into the same state directory.
    assert installed.program("safe-resolver-lists.service") == serve
    main, lists = (
        installed.unit("safe-resolver.service"),
        installed.unit("safe-resolver-lists.service"),
    )
    for key in ("User", "Group", "StateDirectory"):
        assert directives(lists, key) == directives(main, key) == ["safe-resolver"], key
    # The venv is laid out for its final place, not for DESTDIR.
    assert serve.read_text().splitlines()[0] == "#!/opt/safe-resolver/bin/python"
    assert installed.root.name not in (installed.root / "opt/safe-resolver/pyvenv.cfg").read_text()
    assert "files only; not adding user safe-resolver, not running systemctl" in installed.output


def test_installed_config_points_into_the_install(installed: Installed) -> None:
    etc = installed.root / "etc/safe-resolver"
    (serve,) = directives(installed.unit("safe-resolver.service"), "ExecStart")
    (config_arg,) = re.findall(r"--config (\S+)", serve)
    config = yaml.safe_load((installed.root / config_arg.lstrip("/")).read_text())
    assert config["policy"] == "/etc/safe-resolver/policy.yaml"
    assert config["querylog"]["path"].startswith("/var/lib/safe-resolver/")
    policy = yaml.safe_load((etc / "policy.yaml").read_text())
    # Everything the service writes is under its StateDirectory (the rest is read-only to it).
    assert policy["lists"]["dir"] == "/var/lib/safe-resolver/lists"
    assert policy["overlay"] == "/var/lib/safe-resolver/overlay.yaml"
    assert (installed.root / "var/lib/safe-resolver/lists").is_dir()


def test_installed_program_checks_the_installed_policy(
    installed: Installed, tmp_path: Path
) -> None:
    """A non-editable install is whole: the catalogue, core lists and safe-search table come
    with it (the policy's lists are not fetched yet: a warning, not an error). The policy is
    checked as installed, but with its state paths moved from /var/lib into tmp_path: `check`
    caches compiled indexes in lists.dir."""
    etc = installed.root / "etc/safe-resolver"
    policy = (etc / "policy.yaml").read_text().replace("/var/lib/safe-resolver", str(tmp_path))
    (tmp_path / "policy.yaml").write_text(policy)
    shutil.copy(etc / "mandated.example.rpz", tmp_path)
    python = installed.root / "opt/safe-resolver/bin/python"
    result = subprocess.run(
        [str(python), "-m", "resolver", "check", str(tmp_path / "policy.yaml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    assert (tmp_path / "lists").is_dir()


def test_units_verify(installed: Installed, tmp_path: Path) -> None:
    """`systemd-analyze verify` (syntax, dependencies, executables): on the installed units with
    their paths pointed into the install root, since the root holds the program but not systemd."""
    for name in UNIT_FILES:
        text = installed.unit(name).read_text()
        for path in ("/opt/safe-resolver", "/etc/safe-resolver"):
            text = text.replace(path, f"{installed.root}{path}")
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        [systemd_analyze(), "verify", *(str(tmp_path / name) for name in UNIT_FILES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr + result.stdout


def test_install_compiles_the_query_path(installed: Installed) -> None:
    """The default install builds the C fast path and the mypyc modules, and says so."""
    if shutil.which("gcc") is None:
        pytest.skip("no C compiler: the install serves the pure-Python path")
    assert "compiled: yes, mypyc: yes" in installed.output


def test_reinstall_keeps_configuration_and_uninstall_keeps_state(installed: Installed) -> None:
    policy = installed.root / "etc/safe-resolver/policy.yaml"
    edited = policy.read_text() + "# the operator's edit\n"
    policy.write_text(edited)
    output = make_install(installed.root, "MYPYC=0")  # pure Python: the upgrade is the point here
    assert f"kept {policy}" in output
    assert "mypyc: yes" not in output
    assert policy.read_text() == edited
    assert installed.program("safe-resolver.service").is_file()

    subprocess.run(
        ["make", "--no-print-directory", "uninstall", f"DESTDIR={installed.root}"],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert not (installed.root / "opt/safe-resolver").exists()
    assert not installed.unit("safe-resolver.service").exists()
    assert policy.read_text() == edited
    assert (installed.root / "var/lib/safe-resolver/lists").is_dir()
