"""The ISP keys of the server config: `proxy_protocol_from` and `bundle`, every mistake as
file:line:column before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from isp_support import keypair
from support.resolver_proc import REPO

from resolver.config import apply_overrides, load_config
from resolver.yamlsource import ConfigError

SHA = "ab" * 32


def _load(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    (tmp_path / "junk.pub").write_text(
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


def test_good_keys(tmp_path: Path) -> None:
    _, _, raw = keypair(tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text(
        "proxy_protocol_from: [10.0.53.1/32, '2001:db8::53']\n"
        "bundle: {url: 'https://policy.example/b.tar.gz', interval: 30, public_key: key.pub}\n"
    )
    cfg = load_config(path)
    assert cfg.proxy_protocol_from == ("10.0.53.1/32", "2001:db8::53")
    assert cfg.bundle is not None and cfg.bundle.public_key == raw
    assert cfg.bundle.interval == 30 and cfg.bundle.dir == tmp_path / "var/bundle"
    assert cfg.serves_policy and cfg.policy is None
    cfg = apply_overrides(cfg, upstreams=["192.0.2.1"], proxy_protocol_from=["192.0.2.9/32"])
    assert cfg.proxy_protocol_from == ("192.0.2.9/32",)
    with pytest.raises(ConfigError, match="--policy"):
        apply_overrides(cfg, upstreams=["192.0.2.1"], policy="p.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("proxy_protocol_from: [0.0.0.0/0]", "1:23: 0.0.0.0/0: every address"),
        ("proxy_protocol_from: [nonsense]", "is not a network"),
        ("bundle: {url: 'ftp://x/b', sha256: " + SHA + "}", "expected an http"),
        ("bundle: {url: 'http://x/b'}", "give public_key or sha256"),
        ("bundle: {url: 'http://x/b', sha256: abc}", "64 hex digits"),
        ("bundle: {url: 'http://x/b', public_key: missing.pub}", "cannot read missing.pub"),
        ("bundle: {url: 'http://x/b', public_key: junk.pub}", "not a usable Ed25519"),
        ("bundle: {url: 'http://x/b', sha256: " + SHA + ", interval: 0}", "between 1"),
        ("bundle: {url: 'http://x/b', sha256: " + SHA + "}\npolicy: p.yaml", "not both"),
        ("bundle: {url: 'http://x/b', sha256: " + SHA + ", pubkey: x}", "unknown key"),
    ],
)
def test_mistakes_are_reported(tmp_path: Path, text: str, message: str) -> None:
    assert message in _load(tmp_path, text)


def test_the_recipe_instance_config_loads(tmp_path: Path) -> None:
    """deploy/isp/config.yaml, with its /etc/safe-resolver files made here."""
    _, pub, raw = keypair(tmp_path, "bundle")
    (tmp_path / "admin.token").write_text("x" * 32 + "\n")
    (tmp_path / "querylog.dsn").write_text("host=/run/postgresql dbname=safe user=resolver\n")
    text = (REPO / "deploy" / "isp" / "config.yaml").read_text()
    path = tmp_path / "config.yaml"
    path.write_text(text.replace("/etc/safe-resolver/", f"{tmp_path}/"))
    cfg = load_config(path)
    assert cfg.proxy_protocol_from == ("10.0.53.1/32",) and "10.0.53.1/32" in cfg.access
    assert cfg.bundle is not None and cfg.bundle.public_key == raw and cfg.policy is None
    assert cfg.querylog.backend == "postgresql" and cfg.workers == "auto"
    assert pub.exists()
