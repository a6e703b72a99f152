"""The server configuration: one YAML file for listeners, upstreams, cache, access and paths.

Every mistake is reported as `file:line:column: message` (through `yamlsource`), all at once,
before anything binds a socket. Command-line flags override the file.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from resolver.dns.acl import DEFAULT_ALLOW
from resolver.dns.ratelimit import ACTIONS, RateLimitConfig, RateOverride
from resolver.dns.server import TcpConfig
from resolver.dns.settings import CacheConfig, UdpConfig, UpstreamConfig
from resolver.dns.tls import DEFAULT_PORTS, EncryptedConfig, certificate_info, server_context
from resolver.http.limits import HttpLimits
from resolver.yamlsource import (
    Checker,
    ConfigError,
    Document,
    Path_,
    Problem,
    load_yaml,
    load_yaml_text,
)

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
    # The school CA's folder (`safe-resolver ca init`): HTTPS certificates for blocked names
    ca: Path | None = None
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
    users_file: Path | None = None  # dashboard accounts (resolver.http.users)
    require_login: bool = False  # loopback needs credentials too


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
    # Kept apart from the raw rows (resolver.rollup, resolver.store.audit): the daily roll-ups
    # and the audit trail for the authorities' reports, and the block page's requests.
    report_retention_days: int = 3 * 365 + 1
    requests_retention_days: int = 365  # decided unblock requests (pending ones stay)
    content_reports_retention_days: int = 365


@dataclass(frozen=True, slots=True)
class OrganisationConfig:
    """Who runs this resolver: named in the reports for the authorities (and on the block
    page). Free text, shown as written."""

    name: str = ""
    address: str = ""
    contact: str = ""  # phone or e-mail of the person responsible


@dataclass(frozen=True, slots=True)
class BundleConfig:
    """Where the policy comes from on an ISP's resolvers: a bundle published by one policy
    host (`safe-resolver bundle make`), polled and verified before use (resolver.bundlepoll)."""

    url: str
    interval: int = 60  # seconds between polls
    sha256: str | None = None  # a fixed bundle: the sha256 of its file
    public_key: bytes | None = None  # the Ed25519 key (32 raw bytes) its manifest is signed with
    dir: Path = Path("var/bundle")  # unpacked bundles and the shared index cache
    max_bytes: int = 256 * 1024 * 1024  # largest bundle file accepted
    timeout: int = 60  # seconds one download may take


@dataclass(frozen=True, slots=True)
class ServerConfig:
    listen: tuple[HostPort, ...] = ()
    upstreams: tuple[HostPort, ...] = ()
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    tcp: TcpConfig = field(default_factory=TcpConfig)
    ratelimit: RateLimitConfig = field(default_factory=RateLimitConfig)
    udp: UdpConfig = field(default_factory=UdpConfig)
    access: tuple[str, ...] = DEFAULT_ALLOW
    # Load balancers whose PROXY v2 headers name the client (resolver.dns.proxygate)
    proxy_protocol_from: tuple[str, ...] = ()
    policy: Path | None = None
    bundle: BundleConfig | None = None  # the policy comes from a signed bundle at a URL
    blockpage: BlockPageConfig = field(default_factory=BlockPageConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    querylog: QueryLogConfig = field(default_factory=QueryLogConfig)
    organisation: OrganisationConfig = field(default_factory=OrganisationConfig)
    encrypted: EncryptedConfig = field(default_factory=EncryptedConfig)
    log_level: str = "warning"
    workers: int | str = 1  # worker processes: a number, or "auto" (one per CPU we may use)
    source: str = "<defaults>"

    @property
    def serves_policy(self) -> bool:
        """A policy file or a policy bundle: False only when filtering is off altogether."""
        return self.policy is not None or self.bundle is not None


_TOP_KEYS = (
    "listen", "upstreams", "upstream", "cache", "tcp", "udp", "ratelimit", "access",
    "proxy_protocol_from", "policy", "bundle", "blockpage", "admin", "querylog", "organisation",
    "log_level", "workers", "dot_listen", "doh_listen", "doq_listen", "tls_cert", "tls_key",
    "encrypted",
)  # fmt: skip
_RATES = {  # rate limit keys, also allowed in each override
    "client_qps": (1, 10_000_000),
    "client_burst": (1, 100_000_000),
    "prefix_qps": (1, 10_000_000),
    "prefix_burst": (1, 100_000_000),
}
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
    "ratelimit": {
        **_RATES,
        "ipv4_prefix": (8, 32),
        "ipv6_prefix": (16, 128),
        "max_clients": (1_024, 10_000_000),
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
        upstream=_upstream(check, data),
        tcp=TcpConfig(**_ints(check, data, "tcp")),
        udp=UdpConfig(**_ints(check, data, "udp")),
    )
    cfg = replace(cfg, ratelimit=_ratelimit(check, data))
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

    proxies = check.str_list(("proxy_protocol_from",), data.get("proxy_protocol_from"))
    for i, net in enumerate(proxies):
        problem = proxy_network_problem(net)
        if problem:
            check.error(("proxy_protocol_from", i), problem)
    cfg = replace(cfg, proxy_protocol_from=tuple(proxies))

    if data.get("policy") is not None and check.type_ok(("policy",), data["policy"], str):
        cfg = replace(cfg, policy=base / data["policy"])
    if data.get("bundle") is not None:
        cfg = replace(cfg, bundle=_bundle(check, data["bundle"], base))
        if cfg.policy is not None:
            check.error(("bundle",), "give policy or bundle, not both: a bundle carries the policy")

    bp = check.mapping(
        ("blockpage",),
        data.get("blockpage"),
        (
            "listen",
            "https_listen",
            "cert",
            "key",
            "ca",
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
    if bool(bp.get("cert")) != bool(bp.get("key")):
        check.error(
            ("blockpage", "cert" if bp.get("cert") else "key"), "TLS needs both cert and key"
        )
    if https and not (bp.get("cert") or bp.get("ca")):
        check.error(
            ("blockpage", "https_listen"),
            "https_listen needs cert and key, or ca (the school CA of `safe-resolver ca init`)",
        )
    cfg = replace(
        cfg,
        blockpage=BlockPageConfig(
            listen=_hostports(check, ("blockpage", "listen"), bp.get("listen", []), None),
            https_listen=https,
            cert=base / bp["cert"] if isinstance(bp.get("cert"), str) else None,
            key=base / bp["key"] if isinstance(bp.get("key"), str) else None,
            ca=base / bp["ca"] if isinstance(bp.get("ca"), str) else None,
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
         "session_idle_timeout", "users_file", "require_login", *_HTTP_LIMITS),
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
    users_file = admin.get("users_file")
    if users_file is not None and not check.type_ok(("admin", "users_file"), users_file, str):
        users_file = None
    require_login = admin.get("require_login", False)
    if not check.type_ok(("admin", "require_login"), require_login, bool):
        require_login = False
    if require_login and not users_file and token is None:
        check.error(("admin", "require_login"), "require_login needs users_file or a token")
    if users_file:
        from resolver.http.users import load_users

        try:
            load_users(base / users_file)  # its mistakes stop the start, file:line:column
        except ConfigError as exc:
            check.problems += exc.problems
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
            users_file=base / users_file if users_file else None,
            require_login=require_login,
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
            "report_retention_days",
            "requests_retention_days",
            "content_reports_retention_days",
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
                report_retention_days=_int(
                    check, ("querylog", "report_retention_days"), ql, 3 * 365 + 1, 366, 36_500
                ),
                requests_retention_days=_int(
                    check, ("querylog", "requests_retention_days"), ql, 365, 1, 36_500
                ),
                content_reports_retention_days=_int(
                    check, ("querylog", "content_reports_retention_days"), ql, 365, 1, 36_500
                ),
            ),
        )

    org = check.mapping(("organisation",), data.get("organisation"), ("name", "address", "contact"))
    texts = {}
    for key in ("name", "address", "contact"):
        value = org.get(key, "")
        if check.type_ok(("organisation", key), value, str):
            if len(value) > 300:
                check.error(("organisation", key), f'"{key}" must be at most 300 characters')
            texts[key] = value.strip()
    cfg = replace(cfg, organisation=OrganisationConfig(**texts))

    cfg = replace(cfg, encrypted=_encrypted(check, data, base))
    level = check.choice(
        ("log_level",), data.get("log_level", "warning"), ("debug", "info", "warning", "error")
    )
    cfg = replace(cfg, log_level=level or "warning")
    cfg = replace(cfg, workers=_workers(check, data.get("workers", 1)))
    if not check.ok:
        raise ConfigError(check.problems)
    return cfg


def _encrypted(check: Checker, data: dict[str, Any], base: Path) -> EncryptedConfig:
    """`dot_listen`, `doh_listen`, `doq_listen`, `tls_cert`, `tls_key`, `encrypted:`."""
    section = check.mapping(("encrypted",), data.get("encrypted"), ("server_name",
                            "handshake_timeout"))  # fmt: skip
    listens = {
        kind: _hostports(check, (f"{kind}_listen",), data.get(f"{kind}_listen", []), port)
        for kind, port in DEFAULT_PORTS.items()
    }
    files = {}
    for key in ("tls_cert", "tls_key"):
        if data.get(key) is not None and check.type_ok((key,), data[key], str):
            files[key] = base / data[key]
    server_name = section.get("server_name", "")
    if not check.type_ok(("encrypted", "server_name"), server_name, str):
        server_name = ""
    cfg = EncryptedConfig(
        dot_listen=listens["dot"],
        doh_listen=listens["doh"],
        doq_listen=listens["doq"],
        tls_cert=files.get("tls_cert"),
        tls_key=files.get("tls_key"),
        server_name=str(server_name).lower().rstrip("."),
        handshake_timeout=_int(check, ("encrypted", "handshake_timeout"), section, 10, 1, 300),
    )
    problem = encrypted_problem(cfg)
    if problem is not None:
        key, message = problem
        check.error((key,) if key in data else (), message)
    return cfg


def encrypted_problem(cfg: EncryptedConfig) -> tuple[str, str] | None:
    """(key, message) when the encrypted listeners cannot start: no certificate, a file that
    cannot be read, a key that does not match; None when they can (or none is configured)."""
    if not cfg.enabled:
        return None
    if cfg.tls_cert is None or cfg.tls_key is None:
        first = next(k for k in ("dot", "doh", "doq") if getattr(cfg, f"{k}_listen"))
        return f"{first}_listen", f"{first}_listen needs tls_cert and tls_key (PEM files)"
    try:
        server_context(cfg.tls_cert, cfg.tls_key, ())
        info = certificate_info(cfg.tls_cert)
    except OSError as exc:
        return "tls_cert", f"cannot read the certificate or key: {exc.strerror or exc}"
    except ValueError as exc:
        return "tls_cert", f"{cfg.tls_cert} is not a PEM certificate: {exc}"
    if not info.base_name(cfg.server_name):
        return "tls_cert", "the certificate names no host: set encrypted.server_name"
    return None


MAX_WORKERS = 256


def proxy_network_problem(text: str) -> str | None:
    """Why `text` cannot be a `proxy_protocol_from` network, or None."""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return f"{text!r} is not a network (CIDR)"
    if net.prefixlen == 0:
        return f"{text}: every address could then claim to be any client; list the balancers"
    return None


_BUNDLE_KEYS = ("url", "interval", "sha256", "public_key", "dir", "max_bytes", "timeout")


def _bundle(check: Checker, raw: Any, base: Path) -> BundleConfig | None:
    """`bundle: {url, interval, sha256 | public_key, dir, max_bytes, timeout}`."""
    spec = check.mapping(("bundle",), raw, _BUNDLE_KEYS, required=("url",))
    url = spec.get("url")
    if not isinstance(url, str):
        if url is not None:  # missing: reported by `required`
            check.type_ok(("bundle", "url"), url, str)
        return None
    if not url.startswith(("http://", "https://")):
        check.error(("bundle", "url"), f"expected an http:// or https:// URL, not {url!r}")
    if ("sha256" in spec) == ("public_key" in spec):
        check.error(("bundle",), "a bundle is used only once verified: give public_key or sha256")
        return None
    sha256 = spec.get("sha256")
    if sha256 is not None and not (
        isinstance(sha256, str)
        and len(sha256) == 64
        and all(c in "0123456789abcdefABCDEF" for c in sha256)
    ):
        check.error(("bundle", "sha256"), "expected the 64 hex digits of a SHA-256")
        return None
    public_key = None
    if "public_key" in spec and check.type_ok(("bundle", "public_key"), spec["public_key"], str):
        public_key = _public_key(check, spec["public_key"], base)
    dir_ = spec.get("dir", "var/bundle")
    check.type_ok(("bundle", "dir"), dir_, str)
    return BundleConfig(
        url=url,
        interval=_int(check, ("bundle", "interval"), spec, 60, 1, 86_400),
        sha256=sha256.lower() if isinstance(sha256, str) else None,
        public_key=public_key,
        dir=base / str(dir_),
        max_bytes=_int(check, ("bundle", "max_bytes"), spec, 256 << 20, 1024, 64 << 30),
        timeout=_int(check, ("bundle", "timeout"), spec, 60, 1, 3600),
    )


def _public_key(check: Checker, value: str, base: Path) -> bytes | None:
    """A PEM public key or the base64 of a raw one, inline or in a file (a path)."""
    from resolver.build.bundle import parse_public_key

    text = value.strip()
    if not text.startswith("-----BEGIN") and not _raw_key(text):
        try:
            text = (base / value).read_text()
        except OSError as exc:
            check.error(("bundle", "public_key"), f"cannot read {value}: {exc.strerror}")
            return None
    try:
        return parse_public_key(text)
    except ImportError:
        check.error(
            ("bundle", "public_key"), "needs cryptography: pip install 'safe-resolver[bundle]'"
        )
    except ValueError as exc:
        check.error(("bundle", "public_key"), f"not a usable Ed25519 public key: {exc}")
    return None


def _raw_key(text: str) -> bool:
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except binascii.Error:
        return False


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


def _ratelimit(check: Checker, data: dict[str, Any]) -> RateLimitConfig:
    raw = _ints(check, data, "ratelimit", extra=("enabled", "action", "overrides"))
    enabled = raw.pop("enabled", True)
    if check.type_ok(("ratelimit", "enabled"), enabled, bool):
        raw["enabled"] = enabled
    if "action" in raw:
        action = check.choice(("ratelimit", "action"), raw.pop("action"), ACTIONS)
        if action is not None:
            raw["action"] = action
    items = raw.pop("overrides", None) or []
    overrides = []
    if check.type_ok(("ratelimit", "overrides"), items, list):
        for i, item in enumerate(items):
            path = ("ratelimit", "overrides", i)
            over = check.mapping(
                path, item, ("network", *_RATES, "unlimited"), required=("network",)
            )
            if not over:
                continue
            rates = {
                key: _int(check, (*path, key), over, 0, low, high)
                for key, (low, high) in _RATES.items()
                if key in over
            }
            unlimited = over.get("unlimited", False)
            if check.type_ok((*path, "unlimited"), unlimited, bool) and unlimited and rates:
                check.error(path, "an override is either unlimited or has rates, not both")
            network = over.get("network")
            if not isinstance(network, str):
                if network is not None:
                    check.type_ok((*path, "network"), network, str)
                continue
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                check.error((*path, "network"), f"{network!r} is not a network (CIDR)")
                continue
            overrides.append(RateOverride(network, unlimited=unlimited is True, **rates))
    return RateLimitConfig(overrides=tuple(overrides), **raw)


def _int(
    check: Checker, path: Path_, data: dict[str, Any], default: int, low: int, high: int
) -> int:
    value = data.get(str(path[-1]), default)
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
    workers: str | None = None,
    dot_listen: Sequence[str] | None = None,
    doh_listen: Sequence[str] | None = None,
    doq_listen: Sequence[str] | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    proxy_protocol_from: Sequence[str] | None = None,
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
        if cfg.bundle is not None:
            problems.append(Problem("--policy", 1, 1, "the config takes its policy from a bundle"))
        cfg = replace(cfg, policy=Path(policy))
    if proxy_protocol_from:
        for net in proxy_protocol_from:
            problem = proxy_network_problem(net)
            if problem:
                problems.append(Problem("--proxy-protocol-from", 1, 1, problem))
        cfg = replace(cfg, proxy_protocol_from=tuple(proxy_protocol_from))
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
    enc = cfg.encrypted
    if dot_listen:
        enc = replace(enc, dot_listen=parse("dot-listen", dot_listen, DEFAULT_PORTS["dot"]))
    if doh_listen:
        enc = replace(enc, doh_listen=parse("doh-listen", doh_listen, DEFAULT_PORTS["doh"]))
    if doq_listen:
        enc = replace(enc, doq_listen=parse("doq-listen", doq_listen, DEFAULT_PORTS["doq"]))
    if tls_cert:
        enc = replace(enc, tls_cert=Path(tls_cert))
    if tls_key:
        enc = replace(enc, tls_key=Path(tls_key))
    if enc != cfg.encrypted:
        flag_problem = encrypted_problem(enc)
        if flag_problem is not None:
            flag, message = flag_problem
            problems.append(Problem(f"--{flag.replace('_', '-')}", 1, 1, message))
        cfg = replace(cfg, encrypted=enc)
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
