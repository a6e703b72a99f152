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
from resolver.dns.udp import UdpConfig
from resolver.dns.upstream import UpstreamConfig
from resolver.http.limits import HttpLimits
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
    limits: HttpLimits = field(default_factory=HttpLimits)


@dataclass(frozen=True, slots=True)
class AdminConfig:
    listen: tuple[HostPort, ...] = ()
    token: str | None = None
    cert: Path | None = None  # with key: the admin listener serves HTTPS only
    key: Path | None = None
    session_lifetime: int = 8 * 3600  # seconds a dashboard login lasts at most
    session_idle_timeout: int = 1800  # seconds of no use after which it ends
    limits: HttpLimits = field(default_factory=HttpLimits)


@dataclass(frozen=True, slots=True)
class QueryLogConfig:
    enabled: bool = False
    backend: str = "sqlite"  # or "postgresql" (needs dsn and the `postgresql` extra)
    path: Path = Path("var/querylog.sqlite")
    dsn: str | None = field(default=None, repr=False)  # may hold a password
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
    udp: UdpConfig = field(default_factory=UdpConfig)
    access: tuple[str, ...] = DEFAULT_ALLOW
    policy: Path | None = None
    blockpage: BlockPageConfig = field(default_factory=BlockPageConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    querylog: QueryLogConfig = field(default_factory=QueryLogConfig)
    log_level: str = "warning"
    workers: int | str = 1  # worker processes: a number, or "auto" (one per CPU we may use)
    source: str = "<defaults>"


_TOP_KEYS = (
    "listen", "upstreams", "upstream", "cache", "tcp", "udp", "access", "policy", "blockpage",
    "admin", "querylog", "log_level", "workers",
)  # fmt: skip
_INT_SECTIONS: dict[str, dict[str, tuple[int, int]]] = {
    # key -> (minimum, maximum)
    "upstream": {
        "timeout_ms": (50, 60_000),
        "attempts": (1, 10),
        "tcp_timeout_ms": (100, 120_000),
        "down_after": (1, 100),
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
    "udp": {
        "batch": (1, 1_024),
        "fast_answers": (0, 50_000_000),
        "fast_clients": (0, 50_000_000),
    },
}


# Keys both HTTP sections (blockpage, admin) take for resolver.http.limits: (minimum, maximum).
_HTTP_LIMITS: dict[str, tuple[int, int]] = {
    "header_timeout": (1, 300),
    "body_timeout": (1, 300),
    "keepalive_timeout": (1, 3600),
    "max_connections_per_client": (1, 1_000_000),
    "max_connections": (1, 1_000_000),
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
        upstream=UpstreamConfig(**_ints(check, data, "upstream")),
        tcp=TcpConfig(**_ints(check, data, "tcp")),
        udp=UdpConfig(**_ints(check, data, "udp")),
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
            *_HTTP_LIMITS,
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
            limits=_http_limits(check, "blockpage", bp),
        ),
    )

    admin = check.mapping(
        ("admin",),
        data.get("admin"),
        ("listen", "token", "token_file", "cert", "key", "session_lifetime",
         "session_idle_timeout", *_HTTP_LIMITS),
    )  # fmt: skip
    if bool(admin.get("cert")) != bool(admin.get("key")):
        check.error(
            ("admin", "cert" if admin.get("cert") else "key"), "TLS needs both cert and key"
        )
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
            cert=base / admin["cert"] if isinstance(admin.get("cert"), str) else None,
            key=base / admin["key"] if isinstance(admin.get("key"), str) else None,
            session_lifetime=_int(
                check, ("admin", "session_lifetime"), admin, 8 * 3600, 60, 30 * 86400
            ),
            session_idle_timeout=_int(
                check, ("admin", "session_idle_timeout"), admin, 1800, 60, 30 * 86400
            ),
            limits=_http_limits(check, "admin", admin),
        ),
    )

    ql = check.mapping(
        ("querylog",),
        data.get("querylog"),
        (
            "enabled",
            "backend",
            "path",
            "dsn",
            "dsn_file",
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
        backend = check.choice(
            ("querylog", "backend"), ql.get("backend", "sqlite"), ("sqlite", "postgresql")
        )
        cfg = replace(
            cfg,
            querylog=QueryLogConfig(
                enabled=bool(enabled),
                backend=backend or "sqlite",
                path=base / str(ql.get("path", "var/querylog.sqlite")),
                dsn=_querylog_dsn(check, ql, backend, base),
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
    cfg = replace(cfg, workers=_workers(check, data.get("workers", 1)))
    if not check.ok:
        raise ConfigError(check.problems)
    return cfg


MAX_WORKERS = 256


def _workers(check: Checker, value: Any) -> int | str:
    """`workers: N` (1..MAX_WORKERS) or `workers: auto`."""
    if value == "auto":
        return "auto"
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_WORKERS:
        return value
    check.error(("workers",), f'"workers" must be auto or a number from 1 to {MAX_WORKERS}')
    return 1


def parse_workers(text: str) -> int | str:
    """`--workers N|auto`; ValueError otherwise."""
    if text == "auto":
        return "auto"
    if text.isdigit() and 1 <= int(text) <= MAX_WORKERS:
        return int(text)
    raise ValueError(f"--workers: expected auto or a number from 1 to {MAX_WORKERS}, not {text!r}")


def _querylog_dsn(
    check: Checker, ql: dict[str, Any], backend: str | None, base: Path
) -> str | None:
    """`querylog.dsn`, or the first line of `dsn_file` (a password kept out of the config)."""
    if "dsn" in ql and "dsn_file" in ql:
        check.error(("querylog", "dsn_file"), "give dsn or dsn_file, not both")
        return None
    dsn = ql.get("dsn")
    if "dsn_file" in ql and check.type_ok(("querylog", "dsn_file"), ql["dsn_file"], str):
        try:
            dsn = (base / ql["dsn_file"]).read_text().strip()
        except OSError as exc:
            check.error(("querylog", "dsn_file"), f"cannot read dsn file: {exc.strerror}")
            return None
    key = ("querylog", "dsn_file" if "dsn_file" in ql else "dsn")
    if backend is None:  # already reported
        return None
    if backend != "postgresql":
        if dsn is not None:
            check.error(key, "a dsn is only for backend: postgresql")
        return None
    if dsn is None:
        check.error(("querylog", "backend"), "backend postgresql needs dsn (or dsn_file)")
        return None
    if not check.type_ok(key, dsn, str):
        return None
    try:
        from resolver.store.postgresql import check_dsn
    except ImportError:
        check.error(
            ("querylog", "backend"),
            "backend postgresql needs psycopg: pip install 'safe-resolver[postgresql]'",
        )
        return None
    try:
        check_dsn(dsn)
    except ValueError as exc:
        check.error(key, str(exc))
        return None
    return str(dsn)


def _int(
    check: Checker, path: tuple[str, ...], data: dict[str, Any], default: int, low: int, high: int
) -> int:
    value = data.get(path[-1], default)
    if not check.type_ok(path, value, int):
        return default
    if not low <= value <= high:
        check.error(path, f'"{path[-1]}" must be between {low} and {high}, not {value}')
        return default
    return int(value)


def _http_limits(check: Checker, section: str, raw: dict[str, Any]) -> HttpLimits:
    values = {
        key: _int(check, (section, key), raw, 0, low, high)
        for key, (low, high) in _HTTP_LIMITS.items()
        if key in raw
    }
    return HttpLimits(**values)


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
    workers: str | None = None,
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
    if workers:
        try:
            cfg = replace(cfg, workers=parse_workers(workers))
        except ValueError as exc:
            problems.append(Problem("--workers", 1, 1, str(exc)))
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
