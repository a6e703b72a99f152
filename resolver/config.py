"""The server configuration: one YAML file for listeners, upstreams, cache, access and paths.

Every mistake is reported as `file:line:column: message` (through `yamlsource`), all at once,
before anything binds a socket. Command-line flags override the file.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from resolver.dns.acl import DEFAULT_ALLOW
from resolver.dns.cache import CacheConfig
from resolver.dns.server import TcpConfig
from resolver.dns.upstream import UpstreamConfig
from resolver.yamlsource import Checker, ConfigError, Document, Problem, load_yaml, load_yaml_text

DEFAULT_LISTEN = "127.0.0.1:5335"
DEFAULT_ADMIN_LISTEN = "127.0.0.1:8053"
RESOLV_CONF = Path("/etc/resolv.conf")

HostPort = tuple[str, int]


@dataclass(frozen=True, slots=True)
class BlockPageConfig:
    listen: tuple[HostPort, ...] = ()
    https_listen: tuple[HostPort, ...] = ()
    cert: Path | None = None
    key: Path | None = None
    addresses: tuple[str, ...] = ()  # what A/AAAA block answers point at (clients must reach it)
    hotline: str = "111"
    hotline_name: str = ""
    lang: str = "vi"
    requests_db: Path | None = None  # unblock requests and content reports (default: querylog path)


@dataclass(frozen=True, slots=True)
class AdminConfig:
    listen: tuple[HostPort, ...] = ()
    token: str | None = None


@dataclass(frozen=True, slots=True)
class QueryLogConfig:
    enabled: bool = False
    path: Path = Path("var/querylog.sqlite")
    clients: str = "pseudonymized"
    retention_days: int = 30
    queue_size: int = 10_000
    batch: int = 500
    flush_interval: float = 1.0
    key_rotation: str = "daily"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    listen: tuple[HostPort, ...] = ()
    upstreams: tuple[HostPort, ...] = ()
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    tcp: TcpConfig = field(default_factory=TcpConfig)
    access: tuple[str, ...] = DEFAULT_ALLOW
    policy: Path | None = None
    blockpage: BlockPageConfig = field(default_factory=BlockPageConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    querylog: QueryLogConfig = field(default_factory=QueryLogConfig)
    log_level: str = "warning"
    source: str = "<defaults>"


_TOP_KEYS = (
    "listen", "upstreams", "upstream", "cache", "tcp", "access", "policy", "blockpage", "admin",
    "querylog", "log_level",
)  # fmt: skip
_INT_SECTIONS: dict[str, dict[str, tuple[int, int]]] = {
    # key -> (minimum, maximum)
    "upstream": {
        "timeout_ms": (50, 60_000),
        "attempts": (1, 10),
        "tcp_timeout_ms": (100, 120_000),
        "down_after": (1, 100),
        "query_budget_ms": (200, 60_000),
        "stale_answer_ms": (100, 60_000),
    },
    "cache": {
        "size": (0, 50_000_000),
        "min_ttl": (0, 86_400),
        "max_ttl": (0, 7 * 86_400),
        "negative_max_ttl": (0, 86_400),
        "servfail_ttl": (0, 300),
        "stale_ttl": (0, 7 * 86_400),
    },
    "tcp": {
        "idle_timeout": (1, 3_600),
        "max_connections": (1, 1_000_000),
        "max_queued_bytes": (1_024, 16_777_216),
        "max_pending": (1, 10_000),
    },
}


def parse_hostport(text: str, default_port: int | None = None) -> HostPort:
    """ "1.2.3.4:53", "[::1]:53", "::1" or "1.2.3.4" (with a default port) -> (host, port)."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: expected [IPv6]:PORT")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address") from None
    if not port_text:
        if default_port is None:
            raise ValueError(f"{text!r}: a port is needed (ADDR:PORT)")
        return host, default_port
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: port must be a number from 0 to 65535")
    return host, int(port_text)


def resolv_conf_upstreams(path: Path = RESOLV_CONF) -> tuple[HostPort, ...]:
    """The `nameserver` lines of /etc/resolv.conf (zone indexes dropped), in order."""
    found: list[HostPort] = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ()
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            host = parts[1].split("%", 1)[0]
            try:
                ipaddress.ip_address(host)
            except ValueError:
                continue
            found.append((host, 53))
    return tuple(found)


def load_config(path: str | Path | None) -> ServerConfig:
    """Load and check a server config file (None: built-in defaults). Raises `ConfigError`."""
    if path is None:
        doc = load_yaml_text("{}", "<defaults>")
        base = Path.cwd()
    else:
        doc = load_yaml(path)
        base = Path(path).resolve().parent
    return _build(doc, base)


def _build(doc: Document, base: Path) -> ServerConfig:
    check = Checker(doc)
    data = check.mapping((), doc.data, _TOP_KEYS)
    cfg = ServerConfig(source=doc.file)
    cfg = replace(
        cfg,
        listen=_hostports(check, ("listen",), data.get("listen", [DEFAULT_LISTEN]), None),
        upstreams=_hostports(check, ("upstreams",), data.get("upstreams", []), 53),
        upstream=_upstream(check, data),
        tcp=TcpConfig(**_ints(check, data, "tcp")),
    )
    cache = _ints(check, data, "cache", extra=("serve_stale",))
    stale = cache.pop("serve_stale", False)
    if check.type_ok(("cache", "serve_stale"), stale, bool):
        cache["serve_stale"] = stale
    cfg = replace(cfg, cache=CacheConfig(**cache))

    access = check.mapping(("access",), data.get("access"), ("allow",))
    if "allow" in access:
        nets = check.str_list(("access", "allow"), access["allow"])
        for i, net in enumerate(nets):
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                check.error(("access", "allow", i), f"{net!r} is not a network (CIDR)")
        cfg = replace(cfg, access=tuple(nets))

    if data.get("policy") is not None and check.type_ok(("policy",), data["policy"], str):
        cfg = replace(cfg, policy=base / data["policy"])

    bp = check.mapping(
        ("blockpage",),
        data.get("blockpage"),
        (
            "listen",
            "https_listen",
            "cert",
            "key",
            "address",
            "hotline",
            "hotline_name",
            "lang",
            "requests_db",
        ),
    )
    addresses = check.str_list(("blockpage", "address"), bp.get("address"))
    for i, addr in enumerate(addresses):
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            check.error(("blockpage", "address", i), f"{addr!r} is not an IP address")
    https = _hostports(check, ("blockpage", "https_listen"), bp.get("https_listen", []), None)
    if https and not (bp.get("cert") and bp.get("key")):
        check.error(("blockpage", "https_listen"), "https_listen needs both cert and key")
    cfg = replace(
        cfg,
        blockpage=BlockPageConfig(
            listen=_hostports(check, ("blockpage", "listen"), bp.get("listen", []), None),
            https_listen=https,
            cert=base / bp["cert"] if isinstance(bp.get("cert"), str) else None,
            key=base / bp["key"] if isinstance(bp.get("key"), str) else None,
            addresses=tuple(addresses),
            hotline=str(bp.get("hotline", "111")),
            hotline_name=str(bp.get("hotline_name", "")),
            lang=check.choice(("blockpage", "lang"), bp.get("lang", "vi"), ("vi", "en")) or "vi",
            requests_db=base / bp["requests_db"]
            if isinstance(bp.get("requests_db"), str)
            else None,
        ),
    )

    admin = check.mapping(("admin",), data.get("admin"), ("listen", "token", "token_file"))
    token = admin.get("token")
    if admin.get("token_file") is not None:
        try:
            token = (base / str(admin["token_file"])).read_text().strip()
        except OSError as exc:
            check.error(("admin", "token_file"), f"cannot read token file: {exc.strerror}")
    if token is not None and (not isinstance(token, str) or len(token) < 16):
        check.error(("admin", "token"), "the admin token must be a string of 16 characters or more")
        token = None
    cfg = replace(
        cfg,
        admin=AdminConfig(
            listen=_hostports(
                check, ("admin", "listen"), admin.get("listen", [DEFAULT_ADMIN_LISTEN]), None
            ),
            token=token,
        ),
    )

    ql = check.mapping(
        ("querylog",),
        data.get("querylog"),
        (
            "enabled",
            "path",
            "clients",
            "retention_days",
            "queue_size",
            "batch",
            "flush_interval",
            "key_rotation",
        ),
    )
    if ql:
        clients = check.choice(
            ("querylog", "clients"), ql.get("clients", "pseudonymized"),
            ("pseudonymized", "full", "none"),
        )  # fmt: skip
        enabled = ql.get("enabled", True)
        check.type_ok(("querylog", "enabled"), enabled, bool)
        cfg = replace(
            cfg,
            querylog=QueryLogConfig(
                enabled=bool(enabled),
                path=base / str(ql.get("path", "var/querylog.sqlite")),
                clients=clients or "pseudonymized",
                retention_days=_int(check, ("querylog", "retention_days"), ql, 30, 0, 3650),
                queue_size=_int(check, ("querylog", "queue_size"), ql, 10_000, 10, 10_000_000),
                batch=_int(check, ("querylog", "batch"), ql, 500, 1, 100_000),
                flush_interval=_int(check, ("querylog", "flush_interval"), ql, 1, 1, 3600),
                key_rotation=check.choice(
                    ("querylog", "key_rotation"),
                    ql.get("key_rotation", "daily"),
                    ("hourly", "daily", "weekly"),
                )
                or "daily",
            ),
        )

    level = check.choice(
        ("log_level",), data.get("log_level", "warning"), ("debug", "info", "warning", "error")
    )
    cfg = replace(cfg, log_level=level or "warning")
    if not check.ok:
        raise ConfigError(check.problems)
    return cfg


def _int(
    check: Checker, path: tuple[str, ...], data: dict[str, Any], default: int, low: int, high: int
) -> int:
    value = data.get(path[-1], default)
    if not check.type_ok(path, value, int):
        return default
    if not low <= value <= high:
        check.error(path, f'"{path[-1]}" must be between {low} and {high}, not {value}')
        return default
    return value


def _ints(
    check: Checker, data: dict[str, Any], section: str, extra: Sequence[str] = ()
) -> dict[str, Any]:
    limits = _INT_SECTIONS[section]
    raw = check.mapping((section,), data.get(section), (*limits, *extra))
    out: dict[str, Any] = {k: raw[k] for k in extra if k in raw}
    for key, (low, high) in limits.items():
        if key in raw:
            out[key] = _int(check, (section, key), raw, 0, low, high)
    return out


def _upstream(check: Checker, data: dict[str, Any]) -> UpstreamConfig:
    upstream = UpstreamConfig(**_ints(check, data, "upstream"))
    if upstream.stale_answer_ms > upstream.query_budget_ms:
        check.error(
            ("upstream", "stale_answer_ms"),
            f"stale_answer_ms ({upstream.stale_answer_ms}) must not exceed query_budget_ms "
            f"({upstream.query_budget_ms}): a stale answer is sent within the query's budget",
        )
    return upstream


def _hostports(
    check: Checker, path: tuple[str, ...], value: Any, default_port: int | None
) -> tuple[HostPort, ...]:
    out = []
    for i, text in enumerate(check.str_list(path, value)):
        try:
            out.append(parse_hostport(text, default_port))
        except ValueError as exc:
            check.error((*path, i), str(exc))
    return tuple(out)


def apply_overrides(
    cfg: ServerConfig,
    *,
    listen: Sequence[str] | None = None,
    upstreams: Sequence[str] | None = None,
    policy: str | None = None,
    blockpage_listen: Sequence[str] | None = None,
    admin_listen: Sequence[str] | None = None,
    log_level: str | None = None,
) -> ServerConfig:
    """Command-line flags win over the file. Raises `ConfigError` naming the bad flag."""
    problems: list[Problem] = []

    def parse(flag: str, values: Sequence[str], default_port: int | None) -> tuple[HostPort, ...]:
        out = []
        for value in values:
            try:
                out.append(parse_hostport(value, default_port))
            except ValueError as exc:
                problems.append(Problem(f"--{flag}", 1, 1, str(exc)))
        return tuple(out)

    if listen:
        cfg = replace(cfg, listen=parse("listen", listen, None))
    if upstreams:
        cfg = replace(cfg, upstreams=parse("upstream", upstreams, 53))
    if policy:
        cfg = replace(cfg, policy=Path(policy))
    if blockpage_listen:
        bp = replace(cfg.blockpage, listen=parse("blockpage-listen", blockpage_listen, None))
        cfg = replace(cfg, blockpage=bp)
    if admin_listen:
        cfg = replace(
            cfg, admin=replace(cfg.admin, listen=parse("admin-listen", admin_listen, None))
        )
    if log_level:
        cfg = replace(cfg, log_level=log_level)
    if not cfg.upstreams:
        cfg = replace(cfg, upstreams=resolv_conf_upstreams())
        if not cfg.upstreams:
            problems.append(
                Problem(cfg.source, 1, 1, "no upstreams configured and none in /etc/resolv.conf")
            )
    for host, port in cfg.upstreams:
        if (host, port) in cfg.listen:
            # Forwarding to our own listener would loop every query until it times out.
            problems.append(
                Problem(cfg.source, 1, 1, f"upstream {host}:{port} is our own listener")
            )
    if problems:
        raise ConfigError(problems)
    return cfg
