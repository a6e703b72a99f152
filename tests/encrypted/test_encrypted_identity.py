"""Devices and profiles selected by identity (DoH path, TLS server name) over DoT, DoH and DoQ,
with real clients: dnspython (DoT, DoH over HTTP/2, DoQ through aioquic), kdig, curl."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import urllib.request

import dns.message
import dns.rcode
import pytest
from encrypted_support import (
    ALLOWED_ADDRESS,
    AN_TOKEN,
    BINH_TOKEN,
    BLOCKED_ADDRESS,
    FAMILY_TOKEN,
    GAMES,
    SERVER_NAME,
    VIDEO,
    Encrypted,
    addresses,
    sni,
)
from support.resolver_proc import metric

# (how it is selected, games, video): the same two queries, each identity's own answers.
EXPECTED = {
    "an-phone": ([ALLOWED_ADDRESS], [ALLOWED_ADDRESS]),  # its allow lifts the profile's deny
    "binh-tablet": ([BLOCKED_ADDRESS], [BLOCKED_ADDRESS]),  # profile deny + its own deny
    "family": ([BLOCKED_ADDRESS], [ALLOWED_ADDRESS]),  # the profile alone
}
PATHS = {
    "an-phone": f"/dns-query/family/{AN_TOKEN}",
    "binh-tablet": f"/dns-query/family/{BINH_TOKEN}",
    "family": f"/dns-query/{FAMILY_TOKEN}",
}
NAMES = {
    "an-phone": sni(AN_TOKEN),
    "binh-tablet": sni(BINH_TOKEN),
    "family": f"{FAMILY_TOKEN}.{SERVER_NAME}",
}


@pytest.mark.parametrize("who", sorted(EXPECTED))
def test_doh_path_selects_device_over_http2(internet: Encrypted, who: str) -> None:
    games, video = EXPECTED[who]
    assert addresses(internet.doh_query(GAMES, PATHS[who])) == games
    assert addresses(internet.doh_query(VIDEO, PATHS[who], post=False)) == video


@pytest.mark.parametrize("who", sorted(EXPECTED))
def test_dot_server_name_selects_device(internet: Encrypted, who: str) -> None:
    games, video = EXPECTED[who]
    assert addresses(internet.dot_query(GAMES, NAMES[who])) == games
    assert addresses(internet.dot_query(VIDEO, NAMES[who])) == video


@pytest.mark.parametrize("who", ["an-phone", "binh-tablet"])
def test_doq_server_name_selects_device(internet: Encrypted, who: str) -> None:
    games, video = EXPECTED[who]
    assert addresses(internet.doq_query(GAMES, NAMES[who])) == games
    assert addresses(internet.doq_query(VIDEO, NAMES[who])) == video


def test_unknown_or_missing_identity_is_refused_off_the_allowed_networks(
    internet: Encrypted,
) -> None:
    for name in (sni("nosuchdevice0token00"), SERVER_NAME, f"{AN_TOKEN}-open.{SERVER_NAME}"):
        assert internet.dot_query(GAMES, name).rcode() == dns.rcode.REFUSED
        assert internet.doq_query(GAMES, name).rcode() == dns.rcode.REFUSED
    for path in ("/dns-query", "/dns-query/family/nosuchdevice0token00", "/dns-query/family",
                 "/dns-query/open", f"/dns-query/open/{AN_TOKEN}", "/other"):  # fmt: skip
        with pytest.raises(ValueError, match="404"):
            internet.doh_query(GAMES, path)
    assert internet.proc.query(GAMES).rcode() == dns.rcode.REFUSED  # plain DNS: by address
    assert metric(internet.admin, "safe_resolver_dropped_total", reason="identity-unknown") >= 6
    assert metric(internet.admin, "safe_resolver_dropped_total", reason="doh-not-found") >= 2


def test_on_the_allowed_networks_no_identity_means_the_address_decides(lan: Encrypted) -> None:
    # Loopback is allowed here and gets the default profile ("open"): nothing denied.
    assert addresses(lan.dot_query(GAMES)) == [ALLOWED_ADDRESS]
    assert addresses(lan.doh_query(GAMES)) == [ALLOWED_ADDRESS]
    assert addresses(lan.doq_query(GAMES)) == [ALLOWED_ADDRESS]
    # A device still gets its own answers, and a wrong path is an error, never NOERROR.
    assert addresses(lan.dot_query(VIDEO, sni(BINH_TOKEN))) == [BLOCKED_ADDRESS]
    with pytest.raises(ValueError, match="404"):
        lan.doh_query(GAMES, "/dns-query/family/typo")


def test_metrics_count_each_transport_under_the_parent_profile(internet: Encrypted) -> None:
    internet.dot_query(VIDEO, NAMES["an-phone"])
    internet.doh_query(VIDEO, PATHS["an-phone"])
    for transport in ("dot", "doh", "doq"):
        assert metric(internet.admin, "safe_resolver_queries_total", transport=transport) > 0
    assert metric(internet.admin, "safe_resolver_queries_total", profile="family") > 0
    text = _metrics_text(internet)
    assert "an-phone" not in text and AN_TOKEN not in text  # devices are never labels


def _metrics_text(enc: Encrypted) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{enc.admin}/metrics", timeout=5) as resp:
        return resp.read().decode()


def _kdig(*args: str) -> str:
    exe = shutil.which("kdig")
    if exe is None:
        pytest.skip("kdig not installed (Debian package knot-dnsutils)")
    run = subprocess.run([exe, *args], capture_output=True, text=True, timeout=30)
    return run.stdout + run.stderr


def test_kdig_over_tls_with_the_device_name(internet: Encrypted) -> None:
    out = _kdig(
        "@127.0.0.1", "-p", str(internet.dot), "+tls", f"+tls-ca={internet.cert}",
        f"+tls-hostname={sni(AN_TOKEN)}", f"+tls-sni={sni(AN_TOKEN)}", GAMES, "A",
    )  # fmt: skip
    assert "status: NOERROR" in out and ALLOWED_ADDRESS in out, out
    out = _kdig(
        "@127.0.0.1", "-p", str(internet.dot), "+tls", f"+tls-ca={internet.cert}",
        f"+tls-hostname={SERVER_NAME}", GAMES, "A",
    )  # fmt: skip
    assert "status: REFUSED" in out, out


def test_kdig_over_https_with_the_device_path(internet: Encrypted) -> None:
    for post in ("+https", "+https-get"):
        out = _kdig(
            "@127.0.0.1", "-p", str(internet.doh), f"{post}=" + PATHS["binh-tablet"],
            f"+tls-ca={internet.cert}", "+tls-hostname=127.0.0.1", VIDEO, "A",
        )  # fmt: skip
        assert "status: NOERROR" in out and BLOCKED_ADDRESS in out, out
        assert "HTTP/2" in out, out


def test_curl_resolves_through_doh_over_http2(internet: Encrypted) -> None:
    exe = shutil.which("curl")
    if exe is None:
        pytest.skip("curl not installed")
    page = internet.page
    # binh-tablet's DoH path answers video.* with the block page's address: curl fetches the
    # block page through it (DoH over HTTP/2, our certificate checked).
    run = subprocess.run(
        [exe, "-sS", "--max-time", "10", "--cacert", str(internet.cert),
         "--doh-url", internet.doh_url(PATHS["binh-tablet"]), f"http://{VIDEO}:{page}/"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "111" in run.stdout  # the block page with the hotline
    # An unknown path: the DoH server says 404, so curl cannot resolve the name.
    run = subprocess.run(
        [exe, "-sS", "--max-time", "10", "--cacert", str(internet.cert),
         "--doh-url", internet.doh_url("/dns-query/family/unknown"), f"http://{VIDEO}:{page}/"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert run.returncode == 6, (run.returncode, run.stderr)  # could not resolve host


def test_dot_pipelines_like_tcp(internet: Encrypted) -> None:
    """Ten queries written at once on one TLS connection: ten answers, matched by ID."""
    queries = []
    for i in range(10):
        q = dns.message.make_query(f"p{i}.w.example.org", "A")
        q.id = 1000 + i
        queries.append(q)
    payload = b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries))
    with (
        socket.create_connection(("127.0.0.1", internet.dot), timeout=10) as raw,
        internet.context().wrap_socket(raw, server_hostname=sni(AN_TOKEN)) as tls,
    ):
        assert tls.selected_alpn_protocol() == "dot"
        tls.sendall(payload)
        answers = {}
        buffer = b""
        while len(answers) < 10:
            buffer += tls.recv(65536)
            while len(buffer) >= 2 and len(buffer) >= 2 + struct.unpack("!H", buffer[:2])[0]:
                size = struct.unpack("!H", buffer[:2])[0]
                reply = dns.message.from_wire(buffer[2 : 2 + size])
                buffer = buffer[2 + size :]
                answers[reply.id] = addresses(reply)
    assert answers == {1000 + i: [ALLOWED_ADDRESS] for i in range(10)}
