"""The certificate is read again on reload: new connections get the new one, connections
already open keep theirs and go on answering; a broken file keeps the old one serving."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import time
from pathlib import Path

import dns.message
import dns.query
import pytest
from encrypted_support import AN_TOKEN, GAMES, SERVER_NAME, addresses, sni, start
from support.authority import Authority
from support.certs import make_cert
from support.resolver_proc import ResolverFactory


def _open(port: int, cafile: Path, alpn: str = "dot") -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.set_alpn_protocols([alpn])
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname=sni(AN_TOKEN))


def _ask(sock: ssl.SSLSocket) -> list[str]:
    reply = dns.query.tls(dns.message.make_query(GAMES, "A"), "127.0.0.1", sock=sock, timeout=5)
    return addresses(reply)


def _replace(src: Path, dst: Path) -> None:
    """Swap a file whole, as certbot's deploy hook or `install` does."""
    tmp = dst.with_suffix(".new")
    tmp.write_bytes(src.read_bytes())
    os.replace(tmp, dst)


def _until_new_certificate(port: int, cafile: Path, alpn: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            _open(port, cafile, alpn).close()
            return
        except ssl.SSLCertVerificationError:
            assert time.monotonic() < deadline, "the new certificate was never served"
            time.sleep(0.2)


def test_certificate_swap_on_reload_keeps_open_connections(
    authority: Authority, resolver_proc: ResolverFactory, tmp_path: Path
) -> None:
    enc = start(resolver_proc, tmp_path, authority, ["10.0.0.0/8"], tcp={"idle_timeout": 120})
    old_ca = tmp_path / "old-ca.crt"
    old_ca.write_bytes(enc.cert.read_bytes())
    before = _open(enc.dot, old_ca)
    assert _ask(before) == ["192.0.2.200"]

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    new_cert, new_key = make_cert(fresh, SERVER_NAME, wildcard=True)
    _replace(new_key, enc.key)
    _replace(new_cert, enc.cert)
    enc.proc.proc.send_signal(signal.SIGHUP)

    _until_new_certificate(enc.dot, new_cert, "dot")
    _until_new_certificate(enc.doh, new_cert, "h2")
    with pytest.raises(ssl.SSLCertVerificationError):
        _open(enc.dot, old_ca)
    assert _ask(before) == ["192.0.2.200"]  # the connection opened before the swap lives on
    before.close()
    # DoQ too: a new QUIC connection that trusts only the new certificate gets through.
    reply = dns.query.quic(
        dns.message.make_query(GAMES, "A"), "127.0.0.1", port=enc.doq, timeout=5,
        verify=str(new_cert), server_hostname=sni(AN_TOKEN),
    )  # fmt: skip
    assert addresses(reply) == ["192.0.2.200"]

    # A broken key file: the reload reports it and the current certificate keeps serving.
    enc.key.write_text("not a key\n")
    enc.proc.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while "certificate reload failed" not in enc.proc.output():
        assert time.monotonic() < deadline, enc.proc.output()
        time.sleep(0.2)
    with _open(enc.dot, new_cert) as after:
        assert _ask(after) == ["192.0.2.200"]
