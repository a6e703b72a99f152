"""`dot_listen`, `doh_listen`, `doq_listen`, `tls_cert`, `tls_key`, `encrypted:` in the config
file and the `serve` flags: mistakes reported as file:line:column before anything binds."""

from __future__ import annotations

from pathlib import Path

import pytest
from encrypted_support import SERVER_NAME
from support.certs import make_cert

from resolver.config import apply_overrides, load_config
from resolver.dns.encrypted import ddr_records
from resolver.dns.tls import CertificateInfo, EncryptedConfig, identity_from_sni
from resolver.yamlsource import ConfigError


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "config.yaml"
    path.write_text("upstreams: ['192.0.2.53']\n" + text)
    return load_config(path)


def test_keys_are_read_with_default_ports(tmp_path: Path) -> None:
    make_cert(tmp_path, SERVER_NAME, wildcard=True)
    cfg = _load(
        tmp_path,
        "dot_listen: ['0.0.0.0', '[::]:8853']\ndoh_listen: ['127.0.0.1']\n"
        f"tls_cert: {SERVER_NAME}.crt\ntls_key: {SERVER_NAME}.key\n"
        "encrypted: {server_name: DNS.Example.VN., handshake_timeout: 5}\n",
    ).encrypted
    assert cfg.dot_listen == (("0.0.0.0", 853), ("::", 8853))
    assert cfg.doh_listen == (("127.0.0.1", 443),)
    assert cfg.tls_cert == tmp_path / f"{SERVER_NAME}.crt"
    assert (cfg.server_name, cfg.handshake_timeout) == (SERVER_NAME, 5)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("dot_listen: ['127.0.0.1:853']\n", ":2:13:", "dot_listen needs tls_cert and tls_key"),
        ("doh_listen: ['127.0.0.1']\ntls_cert: nope.crt\ntls_key: nope.key\n", ":3:11:",
         "cannot read the certificate or key"),
        ("dot_listen: ['dns.example.vn:853']\n", ":2:", "is not an IP address"),
        ("encrypted: {handshake_timeout: 0}\n", ":2:", "between 1 and 300"),
        ("encrypted: {servername: x}\n", ":2:", "unknown key 'servername'"),
    ],
)  # fmt: skip
def test_mistakes_name_their_place(tmp_path: Path, text: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    lines = str(caught.value)
    assert where in lines and message in lines, lines


def test_flags_override_and_are_checked(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, SERVER_NAME, wildcard=True)
    base = _load(tmp_path, "")
    cfg = apply_overrides(
        base, dot_listen=["127.0.0.1:8853"], doh_listen=["127.0.0.1:8443", "[::1]:8443"],
        tls_cert=str(cert), tls_key=str(key),
    ).encrypted  # fmt: skip
    assert cfg.dot_listen == (("127.0.0.1", 8853),)
    assert cfg.doh_listen == (("127.0.0.1", 8443), ("::1", 8443))
    with pytest.raises(ConfigError, match="--dot-listen:1:1: dot_listen needs tls_cert"):
        apply_overrides(base, dot_listen=["127.0.0.1:8853"])
    with pytest.raises(ConfigError, match="--tls-cert"):
        apply_overrides(base, doh_listen=["127.0.0.1:8443"], tls_cert=str(key), tls_key=str(key))


@pytest.mark.parametrize(
    ("server_name", "identity"),
    [
        (None, ""),
        (SERVER_NAME, ""),
        ("AN0PHONE-family.dns.example.vn.", "an0phone-family"),
        ("an0phone.family.dns.example.vn", "family/an0phone"),
        ("other.example", ""),
        ("a.b.c.dns.example.vn", "a.b.c.dns.example.vn"),  # no such identity: refused
    ],
)
def test_identity_in_the_tls_server_name(server_name: str | None, identity: str) -> None:
    assert identity_from_sni(server_name, SERVER_NAME) == identity


def test_ddr_needs_a_name_and_a_listener() -> None:
    info = CertificateInfo((f"*.{SERVER_NAME}",), ("192.0.2.1", "2001:db8::1"))
    assert ddr_records(EncryptedConfig(), info) == {}
    records = ddr_records(EncryptedConfig(dot_listen=(("0.0.0.0", 853),)), info)
    assert set(records) == {"_dns.resolver.arpa", f"_dns.{SERVER_NAME}"}
    (rdata,) = records["_dns.resolver.arpa"]
    assert rdata.startswith(b"\x00\x01\x03dns\x07example\x02vn\x00")  # priority 1, our name
    assert b"\x00\x01\x00\x04\x03dot" in rdata  # alpn=dot
    assert bytes([192, 0, 2, 1]) in rdata  # ipv4hint from the certificate
