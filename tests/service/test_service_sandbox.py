"""The resolver under the unit's MemoryDenyWriteExecute=yes, applied here by the kernel itself.

Linux 6.3+ has the same rule as a process flag (prctl PR_SET_MDWE, kept across fork and exec): no
mapping may become both writable and executable, or gain execute later. The whole resolver runs
under it from its first instruction: every compiled module it loads (uvloop, aiohttp's parser,
pyahocorasick, yaml, sqlite3, ssl), answers, the block page, and a SIGHUP reload whose compile
child inherits the flag. systemd's seccomp version also refuses mprotect(PROT_EXEC) on memory
that is executable already, which only code that rewrites its own text does.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest
import yaml
from notify_listener import NotifyListener
from support import resolver_proc
from support.authority import Authority
from support.resolver_proc import ResolverFactory, free_port

# Sets the flag, proves it holds (a W+X mapping is refused), then becomes the given command.
UNDER_MDWE = """\
import ctypes, mmap, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(77)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit(78)
except PermissionError:
    pass
os.execv(sys.argv[1], sys.argv[1:])
"""


@pytest.fixture
def under_mdwe(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = subprocess.run([sys.executable, "-c", UNDER_MDWE, "/bin/true"], timeout=30)
    if probe.returncode == 77:
        pytest.skip("the kernel has no PR_SET_MDWE (Linux 6.3+)")
    assert probe.returncode == 0, f"PR_SET_MDWE set but not enforced ({probe.returncode})"
    plain = resolver_proc.serve_command
    monkeypatch.setattr(
        resolver_proc,
        "serve_command",
        lambda config, *extra: [sys.executable, "-c", UNDER_MDWE, *plain(config, *extra)],
    )


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyListener]:
    sock = NotifyListener(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", sock.env_value)
    yield sock
    sock.close()


def policy(*deny: str) -> str:
    text: str = yaml.safe_dump(
        {
            "version": 1,
            "clients": {"default": "kids"},
            "profiles": {"kids": {"age": "6-10", "deny": list(deny), "block_mode": "blockpage"}},
            "lists": {"dir": "lists", "catalogue_sources": False},
        }
    )
    return text


def test_serves_and_reloads_with_no_writable_executable_memory(
    under_mdwe: None,
    listener: NotifyListener,
    resolver_proc: ResolverFactory,
    authority: Authority,
    tmp_path: Path,
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy("first.w.example.org"))
    web = free_port()
    rp = resolver_proc(
        [authority.address],
        policy=str(path),
        blockpage={"listen": [f"127.0.0.1:{web}"]},
        querylog={"path": str(tmp_path / "querylog.sqlite")},
    )
    listener.wait_for(lambda m: m.get("READY") == "1", "READY=1")
    assert rp.query("www.example.org").rcode() == dns.rcode.NOERROR
    blocked = rp.query("first.w.example.org")
    assert [r.to_text() for r in blocked.answer[0]] == ["127.0.0.1"]
    request = urllib.request.Request(f"http://127.0.0.1:{web}/", headers={"Host": "pornhub.com"})
    with urllib.request.urlopen(request, timeout=5) as page:
        assert page.status == 200

    path.write_text(policy("first.w.example.org", "second.w.example.org"))
    rp.proc.send_signal(signal.SIGHUP)
    done = listener.wait_for(lambda m: m.get("READY") == "1", "READY=1 after reload", timeout=60)
    assert done["STATUS"] == "serving policy generation 2", rp.output()
    assert [r.to_text() for r in rp.query("second.w.example.org").answer[0]] == ["127.0.0.1"]
