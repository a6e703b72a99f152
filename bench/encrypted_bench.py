"""Encrypted DNS benchmark: DoT and DoH against plain UDP and TCP, ours and Unbound, same run.

Every server answers the same 1,000 names from its cache (one warm-up pass first), so the run
measures what each transport costs, not upstream work. Ours serves UDP, TCP, DoT and DoH from
one worker process; Unbound serves UDP, DoT and DoH (`tls-port`, `https-port`, one thread).
Each server is pinned to CPU 0, dnsperf (`-m udp|tcp|dot|doh`) to CPU 1. "CPU us/q" is the
server's CPU time (user + system, every process of it) during the run divided by the queries it
answered: on a shared machine the ratios to our own UDP row are what to compare.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.dns_bench import RESULTS, Run, Settings, hit_queries, machine
from bench.peers.configs import fast_authority
from bench.peers.process import LOAD_CPU, Server, free_port

MODES = ("udp", "tcp", "dot", "doh")
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Endpoints:
    """One server under test and the port of each transport it serves."""

    server: Server
    ports: dict[str, int]


@dataclass
class Row:
    server: str
    mode: str
    qps: float
    avg_ms: float
    cpu_us: float | None
    lost_pct: float
    note: str = ""


def make_cert(folder: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (dnsperf does not verify it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dns.bench.test")])
    now = datetime.datetime.now(datetime.UTC)
    san = x509.SubjectAlternativeName(
        [x509.DNSName("dns.bench.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False).sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = folder / "bench.crt", folder / "bench.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def ours(upstream: int, workdir: Path, cert: Path, key: Path) -> Endpoints:
    ports = {"udp": free_port(), "dot": free_port(), "doh": free_port()}
    ports["tcp"] = ports["udp"]
    config = workdir / "safe-resolver.yaml"
    config.write_text(
        f'listen: ["127.0.0.1:{ports["udp"]}"]\n'
        f'upstreams: ["127.0.0.1:{upstream}"]\n'
        "cache: {size: 100000}\n"
        "ratelimit: {enabled: false}\n"  # dnsperf sends everything from one address
        "tcp: {max_pending: 1000}\n"
        f'dot_listen: ["127.0.0.1:{ports["dot"]}"]\n'
        f'doh_listen: ["127.0.0.1:{ports["doh"]}"]\n'
        f"tls_cert: {json.dumps(str(cert))}\ntls_key: {json.dumps(str(key))}\n"
        "encrypted: {server_name: dns.bench.test}\n"
        "admin: {listen: []}\nlog_level: warning\n"
    )
    argv = [sys.executable, "-m", "resolver", "serve", "--config", str(config)]
    return Endpoints(Server("safe-resolver", argv, ports["udp"]), ports)


def unbound(upstream: int, workdir: Path, cert: Path, key: Path) -> Endpoints:
    ports = {"udp": free_port(), "dot": free_port(), "doh": free_port()}
    conf = workdir / "unbound.conf"
    interfaces = "".join(f"  interface: 127.0.0.1@{p}\n" for p in ports.values())
    conf.write_text(
        "server:\n"
        f"{interfaces}  port: {ports['udp']}\n"
        f"  tls-port: {ports['dot']}\n  https-port: {ports['doh']}\n"
        f'  tls-service-key: "{key}"\n  tls-service-pem: "{cert}"\n'
        '  http-endpoint: "/dns-query"\n'
        "  do-ip6: no\n  num-threads: 1\n"
        f'  username: ""\n  chroot: ""\n  directory: "{workdir}"\n'
        f'  pidfile: "{workdir / "unbound.pid"}"\n'
        '  use-syslog: no\n  logfile: ""\n  verbosity: 0\n  do-daemonize: no\n'
        '  do-not-query-localhost: no\n  module-config: "iterator"\n'
        "  access-control: 127.0.0.0/8 allow\n  so-reuseport: no\n"
        "  incoming-num-tcp: 1000\n  num-queries-per-thread: 4096\n"
        f'forward-zone:\n  name: "."\n  forward-addr: 127.0.0.1@{upstream}\n'
    )
    binary = shutil.which("unbound") or "/usr/sbin/unbound"
    return Endpoints(Server("unbound", [binary, "-d", "-c", str(conf)], ports["udp"]), ports)


# dnsdist 1.7.3's DoH is not here: in front of the bench's fast authority it answered every DoH
# query with 403 or 502 (its health checks mark that authority down, and forcing it up gives
# 502), while its UDP path served the same names from its cache.
PEERS = {"safe-resolver": ours, "unbound": unbound}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its child processes (ours: supervisor and worker)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def dnsperf(mode: str, port: int, queries: Path, seconds: float, settings: Settings) -> str:
    argv = ["taskset", "-c", LOAD_CPU, "dnsperf", "-m", mode, "-s", "127.0.0.1", "-p", str(port)]
    argv += ["-d", str(queries), "-l", str(seconds), "-c", str(settings.clients)]
    argv += ["-q", str(settings.outstanding), "-t", "2"]
    if mode == "doh":
        argv += ["-O", f"doh-uri=https://127.0.0.1:{port}/dns-query", "-O", "doh-method=POST"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"dnsperf -m {mode} failed: {done.stderr[-500:]}")
    return done.stdout


def measure(target: Endpoints, mode: str, queries: Path, settings: Settings) -> Row:
    port = target.ports[mode]
    server = target.server
    assert server.proc is not None
    dnsperf(mode, port, queries, settings.warmup, settings)
    before = cpu_seconds(server.proc.pid)
    out = dnsperf(mode, port, queries, settings.duration, settings)
    used = cpu_seconds(server.proc.pid) - before
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    avg = float(re.search(r"Average Latency \(s\):\s+([\d.]+)", out).group(1)) * 1000  # type: ignore[union-attr]
    done = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    lost = re.search(r"Queries lost:\s+\d+ \(([\d.]+)%\)", out)
    cpu_us = used / done * 1e6 if done else None
    return Row(server.name, mode, qps, avg, cpu_us, float(lost.group(1)) if lost else 0.0)


def run(settings: Settings, workdir: Path) -> list[Row]:
    cert, key = make_cert(workdir)
    queries = hit_queries(Run(workdir, settings))
    auth = fast_authority(free_port()).start(workdir)
    rows: list[Row] = []
    try:
        for name, factory in PEERS.items():
            folder = workdir / name
            folder.mkdir()
            target = factory(auth.port, folder, cert, key)
            try:
                target.server.start(folder)
            except (RuntimeError, OSError) as exc:
                rows.append(Row(name, "-", 0, 0, None, 0, f"not run: {exc}"))
                continue
            try:
                for mode in MODES:
                    if mode not in target.ports:
                        continue
                    try:
                        rows.append(measure(target, mode, queries, settings))
                    except (RuntimeError, AttributeError) as exc:
                        rows.append(Row(name, mode, 0, 0, None, 0, f"failed: {exc}"[:120]))
                    print(_line(rows[-1], rows[0]), flush=True)
            finally:
                target.server.stop()
    finally:
        auth.stop()
    return rows


def _line(r: Row, base: Row) -> str:
    cpu = f"{r.cpu_us:.1f}" if r.cpu_us is not None else "-"
    qps_ratio = f"{r.qps / base.qps:.2f}" if base.qps else "-"
    cpu_ratio = f"{r.cpu_us / base.cpu_us:.2f}" if r.cpu_us and base.cpu_us else "-"
    return (f"| {r.server} | {r.mode} | {r.qps:,.0f} | {r.avg_ms:.2f} | {cpu} | {qps_ratio} | "
            f"{cpu_ratio} | {r.lost_pct:.2f} | {r.note} |")  # fmt: skip


def table(rows: list[Row]) -> str:
    head = (
        "| server | transport | q/s | avg ms | CPU us/q | q/s vs our UDP | CPU vs our UDP "
        "| lost % | note |\n|---|---|---:|---:|---:|---:|---:|---:|---|\n"
    )
    return head + "\n".join(_line(r, rows[0]) for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench encrypted", description=__doc__)
    parser.add_argument("--duration", type=float, help="seconds per run (default 10)")
    parser.add_argument("--quick", action="store_true", help="3 s runs")
    args = parser.parse_args(argv)
    settings = Settings.quick_settings() if args.quick else Settings()
    if args.duration:
        settings.duration = args.duration
    for tool in ("dnsperf", "taskset"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: sh bench/install-peers.sh")
            return 1
    with tempfile.TemporaryDirectory(prefix="sr-enc-bench-") as tmp:
        rows = run(settings, Path(tmp))
    print(
        f"\nEncrypted DNS benchmark ({machine()}; server on CPU 0, dnsperf on CPU {LOAD_CPU}, "
        f"{settings.clients} clients, {settings.duration:g} s per run, cache hits)\n"
    )
    print(table(rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"encrypted-{stamp}.json"
    out.write_text(json.dumps({"settings": asdict(settings), "rows": [asdict(r) for r in rows]},
                              indent=2))  # fmt: skip
    print(f"\nwritten: {out}")
    return 0
