"""The HTTPS block page of the real server with a school CA (`safe-resolver ca init`): curl with
the CA trusted gets the page for a blocked name over TLS; without it, a certificate error; for a
name that is not blocked, no certificate at all. The mandated refusals end to end."""

from __future__ import annotations

import json
import os
import ssl
import stat
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support.authority import Authority
from support.blockpage_https import ALLOWED, BLOCKED, MANDATED, SERVICE, HttpsBlockPage, start
from support.resolver_proc import ResolverFactory

from resolver.store.sqlite import SqliteRequestStore

CURL_TLS_ERRORS = {35, 60}  # handshake failed; peer certificate cannot be verified


def curl(port: int, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--resolve", f"{name}:{port}:127.0.0.1",
         "-w", "\n%{http_code}", *args, f"https://{name}:{port}/watch?v=1"],
        capture_output=True, text=True,
    )  # fmt: skip


@pytest.fixture
def site(resolver_proc: ResolverFactory, authority: Authority, tmp_path: Path) -> HttpsBlockPage:
    return start(resolver_proc, authority.address, tmp_path)


def test_ca_init_keeps_the_key_to_its_owner(site: HttpsBlockPage) -> None:
    key = site.ca_cert.parent / "ca.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(site.ca_cert.parent.stat().st_mode) == 0o700


def test_a_blocked_name_gets_the_page_over_https_with_the_ca_trusted(site: HttpsBlockPage) -> None:
    done = curl(site.https, BLOCKED, "--cacert", str(site.ca_cert))
    assert done.returncode == 0, done.stderr
    body, code = done.stdout.rsplit("\n", 1)
    assert code == "200" and "Trang này đã bị chặn" in body and "Lớp 10A1" in body
    assert "THCS Nguyễn Du" in body and "0234 3822 123" in body
    done = curl(site.https, SERVICE, "--cacert", str(site.ca_cert))
    assert done.returncode == 0 and 'id="service">TikTok<' in done.stdout, done.stderr
    with pytest.raises(OSError):  # no server name, no configured certificate: refused
        ssl.get_server_certificate(("127.0.0.1", site.https))


def test_without_the_ca_the_browser_sees_a_certificate_error(site: HttpsBlockPage) -> None:
    done = curl(site.https, BLOCKED)  # the system's trust store only
    assert done.returncode in CURL_TLS_ERRORS, (done.returncode, done.stderr)
    assert "certificate" in done.stderr.lower()


def test_no_certificate_for_a_name_that_is_not_blocked(site: HttpsBlockPage) -> None:
    done = curl(site.https, ALLOWED, "--cacert", str(site.ca_cert))
    assert done.returncode == 35, (done.returncode, done.stderr)  # handshake refused
    done = curl(site.https, BLOCKED, "--cacert", str(site.ca_cert))  # the listener goes on
    assert done.returncode == 0, done.stderr
    site.rp.terminate()
    log = site.rp.output()
    assert "Traceback" not in log and "level=error" not in log, log


def test_the_mandated_page_over_https_offers_no_unblock_and_approval_is_refused(
    site: HttpsBlockPage,
) -> None:
    done = curl(site.https, MANDATED, "--cacert", str(site.ca_cert))
    assert done.returncode == 0, done.stderr
    assert "cơ quan chức năng" in done.stdout and "/unblock" not in done.stdout
    # A request made before the name was put on the mandated list: approving it is refused.
    store = SqliteRequestStore(site.requests_db)
    try:
        request_id = store.add_unblock(MANDATED, "pupils", "mandated", "")
    finally:
        store.close()
    url = f"http://127.0.0.1:{site.admin}/api/v1/unblock-requests/{request_id}/approve"
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5)
    assert caught.value.code == 400
    error = json.loads(caught.value.read())["error"]
    assert "mandated list" in error and "cannot be unblocked" in error
    overlay = site.rp.config.parent / "overlay.yaml"
    assert not overlay.exists() or MANDATED not in overlay.read_text()


def test_the_ca_certificate_is_offered_for_download(site: HttpsBlockPage) -> None:
    url = f"http://127.0.0.1:{site.http}/.well-known/safe-resolver/school-ca.crt"
    with urllib.request.urlopen(url, timeout=5) as resp:
        der = resp.read()
    assert der == ssl.PEM_cert_to_DER_cert(site.ca_cert.read_text())
    assert os.path.getsize(site.ca_cert) > 0
