"""One zone transfer (AXFR or IXFR, RFC 5936 / RFC 1995) or SOA query, with TSIG (RFC 8945).

dnspython's `dns.xfr.Inbound` runs the transfer state machine (IXFR deltas, an IXFR answered
AXFR-style, the serial checks, TSIG on the first and last message); the message loop is ours
because it must count what arrives (a zone over `max_bytes` or `max_records` is cut off while it
streams in) and keep reading while dnspython parses (`_Receiver`). Every failure comes out as
`TransferFailed` with a reason from `REASONS` (the metric's bounded label set) and a message for
the operator.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import queue
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.tsig
import dns.xfr

from resolver.lists.catalogue import TransferSpec, TsigKey
from resolver.transfer.zone import CompactZone

MESSAGE_TIMEOUT = 30.0  # seconds the primary may stay silent mid-transfer
_LENGTH = struct.Struct("!H")
# What a primary's bytes can make dnspython or the socket raise; anything else is our bug.
_EXPECTED = (OSError, dns.exception.DNSException, ValueError, KeyError, IndexError, struct.error)

REASONS = (
    "config",  # the TSIG secret file is missing or not base64
    "network",  # connection refused, reset, unreachable
    "timeout",
    "refused",  # the primary answered REFUSED, NOTAUTH without TSIG trouble, SERVFAIL...
    "tsig",  # a signature that does not verify, an unknown key, an unsigned reply
    "truncated",  # the connection closed before the closing SOA
    "oversized",  # over max_bytes or max_records
    "malformed",  # not a well-formed transfer of this zone
    "serial",  # the primary's serial is older than the copy we hold
    "empty",  # the zone holds no rule
    "shrink",  # fewer rules than min_keep_ratio of the last good copy
    "broken",  # the zone text does not parse as RPZ
    "worker",  # the transfer process failed
)


class TransferFailed(Exception):
    """A transfer that must not replace the last good copy; `reason` is one of REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class Received:
    """What one transfer brought: `style` is "ixfr", "axfr" or "up-to-date"."""

    style: str
    bytes: int
    records: int


def keyring(tsig: TsigKey | None) -> dict[dns.name.Name, dns.tsig.Key] | None:
    """The key named in the policy, its secret read from `secret_file` (base64)."""
    if tsig is None:
        return None
    try:
        text = Path(tsig.secret_file).read_text(encoding="ascii").strip()
        secret = base64.b64decode(text, validate=True)
    except (OSError, UnicodeDecodeError, binascii.Error) as exc:
        raise TransferFailed("config", f"TSIG secret {tsig.secret_file}: {exc}") from None
    if not secret:
        raise TransferFailed("config", f"TSIG secret {tsig.secret_file} is empty")
    name = dns.name.from_text(tsig.name)
    return {name: dns.tsig.Key(name, secret, tsig.algorithm)}


def transfer(
    spec: TransferSpec,
    zone: CompactZone,
    keys: dict[dns.name.Name, dns.tsig.Key] | None,
    *,
    max_bytes: int,
    lifetime: float,
) -> Received:
    """Bring `zone` up to the primary's version: IXFR from its serial, AXFR when it is empty."""
    soa = zone.soa()
    name, key = next(iter(keys.items())) if keys else (None, None)
    query, serial = dns.xfr.make_query(
        zone,
        serial=0 if soa is not None else None,
        keyring=keys,
        keyname=name,
        keyalgorithm=key.algorithm if key else dns.tsig.default_algorithm,
    )
    deadline = time.monotonic() + lifetime
    wire = query.to_wire()
    rdtype = query.question[0].rdtype
    received = Received("ixfr" if rdtype == dns.rdatatype.IXFR else "axfr", 0, 0)
    try:
        with (
            socket.create_connection((spec.host, spec.port), timeout=_left(deadline)) as sock,
            dns.xfr.Inbound(zone, rdtype, serial) as inbound,
        ):
            sock.sendall(_LENGTH.pack(len(wire)) + wire)
            receiver = _Receiver(sock, deadline, max_bytes)
            tsig_ctx = None
            first = True
            done = False
            try:
                while not done:
                    data, arrived = receiver.next()
                    with _tsig_clock(arrived):
                        reply = dns.message.from_wire(
                            data,
                            keyring=query.keyring,
                            request_mac=query.mac,
                            xfr=True,
                            origin=zone.origin,
                            tsig_ctx=tsig_ctx,
                            multi=True,
                            one_rr_per_rrset=rdtype == dns.rdatatype.IXFR,
                        )
                    if not query.is_response(reply, xfr_continuation=not first):
                        raise TransferFailed("malformed", "a reply that does not match our query")
                    received.records += sum(len(rrset) for rrset in reply.answer)
                    if received.records > spec.max_records:
                        raise TransferFailed(
                            "oversized", f"zone over max_records ({spec.max_records} records)"
                        )
                    first = False
                    done = inbound.process_message(reply)
                    tsig_ctx = reply.tsig_ctx
            finally:
                received.bytes = receiver.stop()
            if received.style == "ixfr" and not inbound.incremental:
                received.style = "axfr"  # the primary answered the IXFR with the whole zone
    except _EXPECTED as exc:
        raise _failure(exc) from None
    now = zone.soa()
    if serial is not None and now is not None and now.serial == serial:
        received.style = "up-to-date"
    return received


async def query_serial(
    spec: TransferSpec, keys: dict[dns.name.Name, dns.tsig.Key] | None, timeout: float
) -> int:
    """The primary's SOA serial for the zone, asked over TCP (a spoofed UDP answer could
    hold a refresh back); signed when a key is configured."""
    import dns.asyncquery  # the server's side only: the transfer process never imports asyncio

    query = dns.message.make_query(spec.zone + ".", dns.rdatatype.SOA)
    if keys:
        name, key = next(iter(keys.items()))
        query.use_tsig(keys, name, algorithm=key.algorithm)
    try:
        reply = await dns.asyncquery.tcp(query, spec.host, timeout=timeout, port=spec.port)
    except _EXPECTED as exc:
        raise _failure(exc) from None
    if reply.rcode() != dns.rcode.NOERROR:
        raise _refused(reply.rcode())
    for rrset in reply.answer:
        if rrset.rdtype == dns.rdatatype.SOA and rrset.name == query.question[0].name:
            soa = rrset[0]
            assert isinstance(soa, dns.rdtypes.ANY.SOA.SOA)
            return int(soa.serial)
    raise TransferFailed("malformed", f"no SOA for {spec.zone} in the primary's answer")


class _Receiver:
    """Drains the connection on a thread of its own while the caller parses.

    Parsing runs at dnspython's pace (tens of microseconds a record, at idle priority), while a
    primary sending a large zone gives a silent peer well under a second per write (Knot's
    `tcp-io-timeout` is 500 ms) before it hangs up. So messages are read as they come and queued,
    counted against `max_bytes` as they arrive.
    """

    def __init__(self, sock: socket.socket, deadline: float, max_bytes: int) -> None:
        self.sock = sock
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.bytes = 0
        # (message, unix time it arrived) or what ended the stream
        self.queue: queue.SimpleQueue[tuple[bytes, float] | BaseException] = queue.SimpleQueue()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="xfr-receive", daemon=True)
        self.thread.start()

    def next(self) -> tuple[bytes, float]:
        """The next message and when it arrived; raises what ended the stream (EOF, a
        timeout, the size cap)."""
        try:
            item = self.queue.get(timeout=_left(self.deadline))
        except queue.Empty:
            raise TimeoutError from None
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> int:
        """End the reading thread; the bytes received."""
        self.stopping = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join()
        return self.bytes

    def _run(self) -> None:
        try:
            while not self.stopping:
                (length,) = _LENGTH.unpack(self._read(2))
                data = self._read(length)
                self.bytes += length + 2
                if self.bytes > self.max_bytes:
                    raise TransferFailed(
                        "oversized", f"zone over lists.max_bytes ({self.max_bytes} bytes)"
                    )
                self.queue.put((data, time.time()))
        except BaseException as exc:  # handed to the parsing side, which raises it
            self.queue.put(exc)

    def _read(self, count: int) -> bytes:
        data = bytearray()
        while len(data) < count:
            self.sock.settimeout(min(MESSAGE_TIMEOUT, _left(self.deadline)))
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise TransferFailed("truncated", "the primary closed the connection mid-transfer")
            data += chunk
        return bytes(data)


@contextlib.contextmanager
def _tsig_clock(arrived: float) -> Iterator[None]:
    """dnspython checks a TSIG's time against the clock when it parses the message; a large
    zone is parsed minutes after it arrived (the receiver runs ahead), which would fail the
    check past the signer's fudge (300 s). RFC 8945 5.2.3 checks the time at receipt: parse
    with the clock dnspython reads set to the message's arrival. The transfer process alone
    does this, on its one parsing thread."""
    namespace = vars(dns.message)
    real = namespace["time"]
    namespace["time"] = _Clock(arrived)
    try:
        yield
    finally:
        namespace["time"] = real


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _refused(rcode: dns.rcode.Rcode) -> TransferFailed:
    # NOTAUTH to a transfer request is how Knot and BIND turn away a key they do not accept.
    reason = "tsig" if rcode == dns.rcode.NOTAUTH else "refused"
    return TransferFailed(reason, f"the primary answered {dns.rcode.to_text(rcode)}")


def _failure(exc: Exception) -> TransferFailed:
    """The reason and message for an exception raised by a transfer or SOA query."""
    if isinstance(exc, TimeoutError | dns.exception.Timeout):
        return TransferFailed("timeout", "the primary did not answer in time")
    if isinstance(exc, OSError):
        return TransferFailed("network", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, dns.tsig.PeerError | dns.tsig.BadSignature | dns.tsig.BadTime):
        return TransferFailed("tsig", f"TSIG: {type(exc).__name__}: {exc}")
    if isinstance(exc, dns.message.UnknownTSIGKey | dns.tsig.BadAlgorithm):
        return TransferFailed("tsig", f"TSIG: {exc}")
    if isinstance(exc, dns.xfr.TransferError):
        return _refused(exc.rcode)
    if isinstance(exc, dns.xfr.SerialWentBackwards):
        return TransferFailed("serial", "the primary's serial is older than our copy")
    if isinstance(exc, dns.exception.FormError) and "TSIG" in str(exc):
        return TransferFailed("tsig", f"TSIG: {exc}")
    return TransferFailed("malformed", f"{type(exc).__name__}: {exc}")
