"""How each resolver is started for the benchmark: ours and the peers people would otherwise use.

Every server gets a config written into the run's temp dir, listens on 127.0.0.1:PORT, forwards
everything it does not answer itself to the local fast authority, runs one worker (thread or
process) and is pinned to CPU 0 by `Server.start`. With a `Blocklist`, each loads the same names
in its own format, answers them and every name below them with NXDOMAIN, and is only "started"
once it answers a listed name with NXDOMAIN (so start-up time includes loading the list).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

from bench.blocklist_data import Blocklist
from bench.peers.process import LOAD_CPU, NXDOMAIN, REPO, Server

LIST_START_TIMEOUT = 600.0  # seconds a server may take to load 1M rules


def _blocking(server: Server, lists: Blocklist | None) -> Server:
    if lists is not None:
        server.ready_name = f"www.{lists.names[0]}"
        server.ready_rcode = NXDOMAIN
        server.start_timeout = LIST_START_TIMEOUT
    return server


def _signal(sig: int, server: Server) -> None:
    assert server.proc is not None
    os.kill(server.proc.pid, sig)


def _run(argv: list[str], server: Server) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=150)


def ours(
    upstream: int,
    port: int,
    workdir: Path,
    lists: Blocklist | None = None,
    *,
    name: str = "safe-resolver",
    repo: Path = REPO,
    env: dict[str, str] | None = None,
) -> Server:
    """Ours from `repo` (its .venv; this interpreter for this checkout), with `env` added:
    variants under other names compare two checkouts or two UDP paths in one run."""
    policy = None
    if lists is not None:
        policy = workdir / f"policy-{name}.yaml"
        policy.write_text(
            "version: 1\n"
            "lists:\n"
            f"  dir: {json.dumps(str(workdir / f'lists-{name}'))}\n"
            "  catalogue_sources: false\n"
            "  sources:\n"
            f"    - {{id: bench, category: adult, path: {json.dumps(str(lists.domains))}, "
            "format: domains}\n"
            "clients:\n"
            "  default: family\n"
            "profiles:\n"
            "  family:\n"
            "    age: unrestricted\n"
            "    block: [adult]\n"
            "    block_mode: nxdomain\n"
        )
    config = workdir / f"{name}.yaml"
    config.write_text(
        f'listen: ["127.0.0.1:{port}"]\n'
        f'upstreams: ["127.0.0.1:{upstream}"]\n'
        "upstream: {timeout_ms: 2000, attempts: 2}\n"
        "cache: {size: 1000000}\n"
        # dnsperf sends everything from one address; the peers do not rate-limit by default
        "ratelimit: {enabled: false}\n"
        f"policy: {json.dumps(str(policy)) if policy else 'null'}\n"
        "log_level: warning\n"
    )
    python = sys.executable if repo == REPO else str(repo / ".venv" / "bin" / "python")
    argv = [python, "-m", "resolver", "serve", "--config", str(config)]
    server = Server(name, argv, port, reload=partial(_signal, signal.SIGHUP), cwd=repo)
    server.env = dict(env or {})
    server.reload_how = "SIGHUP"
    return _blocking(server, lists)


def dnsmasq(upstream: int, port: int, workdir: Path, lists: Blocklist | None = None) -> Server:
    argv = [
        shutil.which("dnsmasq") or "/usr/sbin/dnsmasq",
        "--keep-in-foreground",
        f"--conf-file={lists.dnsmasq if lists else '/dev/null'}",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        f"--server=127.0.0.1#{upstream}",
        f"--port={port}",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--cache-size=100000",  # dnsmasq's own upper limit is about this order
        "--dns-forward-max=5000",
        f"--pid-file={workdir / 'dnsmasq.pid'}",
        "--log-facility=-",
    ]
    server = Server("dnsmasq", argv, port)
    server.reload_how = "none: SIGHUP re-reads hosts files only, address= needs a restart"
    return _blocking(server, lists)


def unbound(upstream: int, port: int, workdir: Path, lists: Blocklist | None = None) -> Server:
    conf = workdir / "unbound.conf"
    control = workdir / "unbound.ctl"
    include = f'  include: "{lists.unbound}"\n' if lists else ""
    conf.write_text(
        "server:\n"
        f"  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  num-threads: 1\n"
        f'  username: ""\n  chroot: ""\n  directory: "{workdir}"\n'
        f'  pidfile: "{workdir / "unbound.pid"}"\n'
        '  use-syslog: no\n  logfile: ""\n  verbosity: 0\n  do-daemonize: no\n'
        '  do-not-query-localhost: no\n  module-config: "iterator"\n'
        '  local-zone: "test." nodefault\n'  # the bench names: forwarded, not RFC 6761 NXDOMAIN
        "  access-control: 127.0.0.0/8 allow\n  so-reuseport: no\n"
        "  num-queries-per-thread: 4096\n  outgoing-range: 8192\n"
        '  local-zone: "test." nodefault\n'  # bench names are under .test: forward them
        "  msg-cache-size: 128m\n  rrset-cache-size: 256m\n"
        f"{include}"
        "remote-control:\n"
        f'  control-enable: yes\n  control-interface: "{control}"\n'
        f'forward-zone:\n  name: "."\n  forward-addr: 127.0.0.1@{upstream}\n'
    )
    binary = shutil.which("unbound") or "/usr/sbin/unbound"
    reload = partial(_run, [shutil.which("unbound-control") or "unbound-control", "-c", str(conf),
                            "reload"])  # fmt: skip
    server = Server("unbound", [binary, "-d", "-c", str(conf)], port, reload=reload)
    server.reload_how = "unbound-control reload"
    return _blocking(server, lists)


def pdns_recursor(
    upstream: int, port: int, workdir: Path, lists: Blocklist | None = None
) -> Server:
    folder = workdir / "pdns"
    folder.mkdir(exist_ok=True)
    lua = folder / "rpz.lua"
    lua.write_text(f'rpzFile("{lists.rpz}", {{policyName="bench"}})\n' if lists else "")
    (folder / "recursor.conf").write_text(
        f"local-address=127.0.0.1\nlocal-port={port}\n"
        f"forward-zones-recurse=.=127.0.0.1:{upstream}\n"
        f"lua-config-file={lua}\n"
        f"socket-dir={folder}\n"
        "threads=1\npdns-distributes-queries=no\n"
        "daemon=no\nwrite-pid=no\ndisable-syslog=yes\nloglevel=4\nquiet=yes\n"
        "dnssec=off\ndont-query=\nallow-from=127.0.0.0/8\n"
        "max-cache-entries=1000000\nmax-packetcache-entries=1000000\n"
    )
    binary = shutil.which("pdns_recursor") or "/usr/sbin/pdns_recursor"
    control = shutil.which("rec_control") or "rec_control"
    reload = partial(
        _run, [control, f"--socket-dir={folder}", "--timeout=120", "reload-lua-config"]
    )
    server = Server("pdns-recursor", [binary, f"--config-dir={folder}"], port, reload=reload)
    server.reload_how = "rec_control reload-lua-config"
    return _blocking(server, lists)


def kresd(upstream: int, port: int, workdir: Path, lists: Blocklist | None = None) -> Server:
    rundir = workdir / "kresd"
    rundir.mkdir(exist_ok=True)
    rpz = f"policy.add(policy.rpz(policy.DENY, '{lists.rpz}', true))\n" if lists else ""
    conf = rundir / "kresd.conf"
    conf.write_text(
        f"net.listen('127.0.0.1', {port}, {{ kind = 'dns' }})\n"
        "trust_anchors.remove('.')\n"
        f"cache.open(256 * MB, 'lmdb://{rundir}/cache')\n"
        f"{rpz}"
        f"policy.add(policy.all(policy.FORWARD('127.0.0.1@{upstream}')))\n"
    )
    binary = shutil.which("kresd") or "/usr/sbin/kresd"
    server = Server("knot-resolver", [binary, "-n", "-c", str(conf), str(rundir)], port)
    server.reload_how = "policy.rpz watches its file: the list change itself reloads it"
    server.reload = _nothing
    return _blocking(server, lists)


def named(upstream: int, port: int, workdir: Path, lists: Blocklist | None = None) -> Server:
    folder = workdir / "named"
    folder.mkdir(exist_ok=True)
    rpz_zone = ""
    policy = ""
    if lists is not None:
        # min-update-interval 0: the reload benchmark changes the zone seconds after start
        policy = '  response-policy { zone "rpz" min-update-interval 0; } qname-wait-recurse no;\n'
        rpz_zone = f'zone "rpz" {{ type primary; file "{lists.rpz}"; allow-query {{ none; }}; }};\n'
    conf = folder / "named.conf"
    conf.write_text(
        "options {\n"
        f'  directory "{folder}";\n  pid-file "{folder / "named.pid"}";\n'
        f'  session-keyfile "{folder / "session.key"}";\n'
        f'  managed-keys-directory "{folder}";\n'
        f"  listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n"
        "  recursion yes;\n  allow-query { 127.0.0.0/8; };\n  allow-recursion { 127.0.0.0/8; };\n"
        f"  forwarders {{ 127.0.0.1 port {upstream}; }};\n  forward only;\n"
        "  dnssec-validation no;\n  notify no;\n  max-cache-size 512m;\n"
        f"{policy}"
        "};\n"
        "controls { };\n"
        # -g would log every RPZ rewrite to stderr: -f with warnings only, rewrites not logged
        "logging {\n  channel errors { stderr; severity warning; };\n"
        "  category default { errors; };\n  category rpz { null; };\n};\n"
        f"{rpz_zone}"
    )
    binary = shutil.which("named") or "/usr/sbin/named"
    argv = [binary, "-f", "-n", "1", "-c", str(conf)]
    server = Server("bind9", argv, port, reload=partial(_signal, signal.SIGHUP))
    server.reload_how = "SIGHUP (reloads changed zones)"
    return _blocking(server, lists)


def _nothing(server: Server) -> None:
    """Servers that reload on their own when the list file changes."""


def fast_authority(port: int) -> Server:
    argv = [sys.executable, "-m", "bench.fast_authority", "--port", str(port)]
    return Server("fast-authority", argv, port, cpu=LOAD_CPU)


PEERS = {
    "safe-resolver": ours,
    # ours serving UDP with the pure-Python fast path (SAFE_RESOLVER_PURE=1)
    "safe-resolver-pure": partial(ours, name="safe-resolver-pure", env={"SAFE_RESOLVER_PURE": "1"}),
    "unbound": unbound,
    "pdns-recursor": pdns_recursor,
    "dnsmasq": dnsmasq,
    "knot-resolver": kresd,
    "bind9": named,
}
