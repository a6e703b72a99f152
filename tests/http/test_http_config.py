"""The `blockpage` and `admin` config keys for timeouts, caps, sessions and admin TLS."""

from __future__ import annotations

from pathlib import Path

import pytest

from resolver.config import load_config
from resolver.http.limits import HttpLimits
from resolver.yamlsource import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_annotated_example_config_loads_with_the_documented_defaults():
    cfg = load_config(REPO / "systemd" / "config.yaml")
    assert cfg.blockpage.limits == HttpLimits() == cfg.admin.limits
    assert (cfg.admin.session_lifetime, cfg.admin.session_idle_timeout) == (28800, 1800)
    assert cfg.admin.cert is None and cfg.admin.key is None


def test_limits_sessions_and_admin_certificate(tmp_path: Path):
    path = tmp_path / "server.yaml"
    path.write_text(
        "blockpage: {listen: ['127.0.0.1:8080'], header_timeout: 3, keepalive_timeout: 5,\n"
        "            max_connections_per_client: 200, max_connections: 4000}\n"
        "admin: {cert: tls/admin.crt, key: tls/admin.key, session_lifetime: 3600,\n"
        "        session_idle_timeout: 600, max_connections: 32}\n"
    )
    cfg = load_config(path)
    assert cfg.blockpage.limits == HttpLimits(header_timeout=3, keepalive_timeout=5,
                                              max_connections_per_client=200,
                                              max_connections=4000)  # fmt: skip
    assert cfg.admin.limits == HttpLimits(max_connections=32)
    assert cfg.admin.cert == tmp_path / "tls" / "admin.crt"
    assert cfg.admin.key == tmp_path / "tls" / "admin.key"
    assert (cfg.admin.session_lifetime, cfg.admin.session_idle_timeout) == (3600, 600)


def test_bad_values_are_reported_with_their_place(tmp_path: Path):
    path = tmp_path / "server.yaml"
    path.write_text(
        "blockpage: {header_timeout: 0, max_connections: many}\n"
        "admin: {cert: admin.crt, session_idle_timeout: 5}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert '"header_timeout" must be between 1 and 300' in text
    assert "max_connections" in text and "TLS needs both cert and key" in text
    assert '"session_idle_timeout" must be between 60' in text
