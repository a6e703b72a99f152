"""A real Knot DNS primary (`knotd`, Debian package `knot`) on loopback, serving RPZ zones.

The zone-transfer tests and the transfer benchmark pull from it: AXFR and IXFR with a TSIG key,
NOTIFY to the resolver under test after every change. Changes go in as signed DNS UPDATEs
(RFC 2136) sent with dnspython, so Knot keeps each one as an IXFR difference and bumps the serial
itself. Everything lives in one temporary folder; `stop()` ends the one knotd it started.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update

from support.resolver_proc import free_port

KEY_NAME = "xfr-key"
SECRET = base64.b64encode(b"safe-resolver zone transfer key!").decode()
START_TIMEOUT = 60.0  # a million-record zone takes Knot a while to load


def write_secret(path: Path, secret: str = SECRET) -> Path:
    """A TSIG secret file as the policy's `secret_file` names it: the base64 secret."""
    path.write_text(secret + "\n")
    return path


def knotd_path() -> str | None:
    return shutil.which("knotd") or (
        "/usr/sbin/knotd" if Path("/usr/sbin/knotd").is_file() else None
    )


class KnotPrimary:
    """One knotd serving `zones` (name -> zone-file text) on 127.0.0.1:`port`."""

    def __init__(
        self,
        folder: Path,
        zones: dict[str, str],
        *,
        notify_port: int | None = None,
        port: int | None = None,
    ) -> None:
        exe = knotd_path()
        if exe is None:
            raise FileNotFoundError("knotd is not installed (Debian package knot)")
        self.exe = exe
        self.folder = folder
        self.zones = zones
        self.notify_port = notify_port
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / "knotd.log"
        self.keyring = dns.tsigkeyring.from_text({KEY_NAME: ("hmac-sha256", SECRET)})

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> KnotPrimary:
        self.folder.mkdir(parents=True, exist_ok=True)
        for zone, text in self.zones.items():
            (self.folder / f"{zone}.zone").write_text(text)
        config = self.folder / "knot.conf"
        config.write_text(self._config())
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [self.exe, "-c", str(config)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT
        for zone in self.zones:
            while self.serial(zone) is None:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"knotd did not serve {zone}:\n{self.output()}")
                time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def serial(self, zone: str) -> int | None:
        """The zone's SOA serial as Knot serves it now; None while it does not answer."""
        query = dns.message.make_query(zone + ".", "SOA")
        try:
            reply = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.5)
        except (dns.exception.Timeout, OSError):
            return None
        if reply.rcode() != dns.rcode.NOERROR or not reply.answer:
            return None
        return int(reply.answer[0][0].serial)

    def update(
        self, zone: str, *, add: Iterable[str] = (), remove: Iterable[str] = (), rdata: str = "."
    ) -> int:
        """Add and remove `CNAME .` triggers (names relative to the zone) in one signed UPDATE;
        the new serial. Knot records it as one IXFR difference and sends NOTIFY."""
        before = self.serial(zone)
        message = dns.update.UpdateMessage(
            zone + ".",
            keyring=self.keyring,
            keyname=dns.name.from_text(KEY_NAME),
            keyalgorithm="hmac-sha256",
        )
        for name in remove:
            message.delete(name)
        for name in add:
            message.add(name, 60, "CNAME", rdata)
        reply = dns.query.tcp(message, "127.0.0.1", port=self.port, timeout=30)
        if reply.rcode() != dns.rcode.NOERROR:
            raise RuntimeError(f"UPDATE refused: {dns.rcode.to_text(reply.rcode())}")
        serial = self.serial(zone)
        assert serial is not None and serial != before
        return serial

    def _config(self) -> str:
        notify = ""
        if self.notify_port is not None:
            notify = f"remote:\n  - id: resolver\n    address: 127.0.0.1@{self.notify_port}\n"
        zones = "".join(
            f"  - domain: {zone}\n    acl: [transfer, update]\n"
            + ("    notify: resolver\n" if self.notify_port is not None else "")
            for zone in self.zones
        )
        return f"""\
server:
    rundir: "{self.folder}"
    listen: 127.0.0.1@{self.port}
log:
  - target: stderr
    any: info
database:
    storage: "{self.folder}"
key:
  - id: {KEY_NAME}
    algorithm: hmac-sha256
    secret: {SECRET}
{notify}acl:
  - id: transfer
    key: {KEY_NAME}
    action: transfer
  - id: update
    key: {KEY_NAME}
    action: update
template:
  - id: default
    storage: "{self.folder}"
    file: "%s.zone"
    zonefile-sync: -1
    journal-content: changes
    serial-policy: increment
zone:
{zones}"""


def rpz_zone(zone: str, names: Iterable[str], serial: int = 1, *, retry: int = 60) -> str:
    """An RPZ zone file: SOA, NS, and `name CNAME .` for each name (relative to the zone)."""
    head = (
        f"$ORIGIN {zone}.\n$TTL 60\n"
        f"@ IN SOA localhost. hostmaster.{zone}. {serial} 3600 {retry} 86400 60\n"
        "@ IN NS localhost.\n"
    )
    return head + "".join(f"{name} CNAME .\n" for name in names)
