"""A byte-level upstream authority for load runs: it must never be the bottleneck.

Answers every A/AAAA query with one fixed record (TTL 3600) by echoing the question; anything
else gets an empty NOERROR answer, and undecodable packets are dropped. No dnslib on the hot
path: the reply is the header patched in place plus the question bytes plus a preformatted
record that points back at the question name (0xC00C).

Run: ``python -m bench.fast_authority --port 5300`` (uvloop when available).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import struct

TTL = 3600
ANSWER_A = b"\xc0\x0c\x00\x01\x00\x01" + struct.pack("!IH", TTL, 4) + bytes([192, 0, 2, 1])
ANSWER_AAAA = (
    b"\xc0\x0c\x00\x1c\x00\x01"
    + struct.pack("!IH", TTL, 16)
    + bytes.fromhex("20010db8" + "0" * 23 + "1")
)
_ANSWERS = {1: ANSWER_A, 28: ANSWER_AAAA}
# QR, AA, RD (copied below), NOERROR; QD=1, AN=1|0, NS=0, AR=0
_FLAGS_QR_AA = 0x8400


def reply(query: bytes) -> bytes | None:
    """The answer to one query datagram, or None when it is not a readable single question."""
    if len(query) < 17 or query[2] & 0x80 or query[4:6] != b"\x00\x01":
        return None
    pos = 12
    end = len(query)
    while pos < end:  # walk the labels of an uncompressed question name
        size = query[pos]
        if size == 0:
            break
        if size > 63:
            return None
        pos += size + 1
    qend = pos + 5
    if qend > end:
        return None
    qtype = (query[pos + 1] << 8) | query[pos + 2]
    answer = _ANSWERS.get(qtype, b"")
    flags = _FLAGS_QR_AA | (query[2] & 0x01) << 8
    header = query[:2] + struct.pack("!HHHHH", flags, 1, 1 if answer else 0, 0, 0)
    return header + query[12:qend] + answer


class FastAuthority(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.sendto = transport.sendto  # type: ignore[attr-defined]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        out = reply(data)
        if out is not None:
            self.sendto(out, addr)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(FastAuthority, local_addr=(host, port))
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    print(f"fast authority listening on {host}:{port}", flush=True)
    await stop
    transport.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5300)
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
