"""HTTPS for the block page: a certificate for the very name the browser asked for, minted from
the school CA, but only for names the policy blocks for that client.

The listener's TLS context has a server-name (SNI) callback. It learns the client's address
from `resolver.http.guard.PEER` (the handshake runs in its connection's context) and asks the
policy whether the name is blocked for that client now:

- blocked, and a CA is configured: the handshake switches to a context holding a certificate
  for exactly that name, minted on first use and kept in an LRU of CACHE_SIZE names (one
  context is about 21 KB: some 43 MB at most) until it is half-way through its lifetime;
- anything else (an allowed name, no name, no CA): the configured `cert`/`key` (the box's own
  name, e.g. for https://10.0.0.1/), or, without one, the handshake is refused with the TLS
  alert `unrecognized_name`. We never present a certificate for a name we do not block: one
  minted for an allowed name would let this box impersonate a site the child may use, and a
  certificate that does not match is no better than a clear refusal.

Devices that have not installed the CA get a certificate error for blocked HTTPS sites (HSTS
sites allow no click-through); the plain-HTTP page still works where the browser allows it.
The CA and the configured certificate are read again at every reload (`reload`): a CA rotated
with `ca init --force` serves new handshakes without a restart.
"""

from __future__ import annotations

import datetime
import logging
import os
import ssl
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from resolver.http.guard import PEER
from resolver.http.schoolca import LEAF_LIFETIME, CaError, SchoolCa, load_ca, mint
from resolver.lists.normalize import name_or_reason

log = logging.getLogger(__name__)
CACHE_SIZE = 2048  # minted contexts kept (names)
REFUSED = ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME

IsBlocked = Callable[[str, str], bool]  # (client address, name) -> blocked for it now


def _context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def context_from_pem(pem: bytes) -> ssl.SSLContext:
    """A server context over a certificate and key held in memory: Python's ssl loads them only
    from a path, so they go through an anonymous memory file (memfd) that only this process
    can open, never onto a disk."""
    ctx = _context()
    try:
        fd = os.memfd_create("blockpage-cert", os.MFD_CLOEXEC)
    except (AttributeError, OSError):  # no memfd: a private temporary file, removed at once
        with tempfile.NamedTemporaryFile(prefix="blockpage-cert-") as tmp:
            tmp.write(pem)
            tmp.flush()
            ctx.load_cert_chain(tmp.name)
        return ctx
    try:
        os.write(fd, pem)
        ctx.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    return ctx


class CertCache:
    """Contexts with a minted certificate per name, least recently used first out."""

    def __init__(self, ca: SchoolCa, size: int = CACHE_SIZE) -> None:
        self.ca = ca
        self.size = size
        # One key for every leaf: it lives in this process's memory only, and a P-256 key per
        # name would add a key generation to every first handshake for nothing.
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._key_pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._contexts: OrderedDict[str, tuple[ssl.SSLContext, datetime.datetime]] = OrderedDict()
        self.minted = 0

    def __len__(self) -> int:
        return len(self._contexts)

    def context_for(self, name: str, now: datetime.datetime | None = None) -> ssl.SSLContext:
        """The context for `name`: cached while its certificate has more than half its lifetime
        left, else minted now."""
        now = now or datetime.datetime.now(datetime.UTC)
        found = self._contexts.get(name)
        if found is not None and found[1] - now > LEAF_LIFETIME / 2:
            self._contexts.move_to_end(name)
            return found[0]
        pem, until = mint(self.ca, self._key, name, now)
        ctx = context_from_pem(pem + self._key_pem)
        self.minted += 1
        self._contexts[name] = (ctx, until)
        self._contexts.move_to_end(name)
        while len(self._contexts) > self.size:
            self._contexts.popitem(last=False)
        return ctx


class BlockPageTls:
    """The block-page listener's TLS: the context it listens with, the SNI choice, reloads."""

    def __init__(
        self,
        is_blocked: IsBlocked,
        *,
        cert: Path | None = None,
        key: Path | None = None,
        ca_dir: Path | None = None,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        """Raises OSError or ssl.SSLError for an unusable cert/key, CaError for the CA."""
        if (cert is None or key is None) and ca_dir is None:
            raise ValueError("HTTPS for the block page needs cert and key, or a CA")
        self.is_blocked = is_blocked
        self.cert, self.key, self.ca_dir, self.cache_size = cert, key, ca_dir, cache_size
        self.cache: CertCache | None = None
        self.default = self._default()  # the configured certificate's newest context
        if ca_dir is not None:
            self.cache = CertCache(load_ca(ca_dir), cache_size)
        # What the listener holds: every handshake starts here and is moved by `_on_sni`.
        self.context = self._with_callback(self.default)

    @property
    def ca(self) -> SchoolCa | None:
        return self.cache.ca if self.cache is not None else None

    def _default(self) -> ssl.SSLContext | None:
        if self.cert is None or self.key is None:
            return None
        ctx = _context()
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx

    def _with_callback(self, ctx: ssl.SSLContext | None) -> ssl.SSLContext:
        ctx = ctx or _context()
        ctx.sni_callback = self._on_sni
        return ctx

    def reload(self) -> str:
        """Read the configured certificate and the CA again (new handshakes use them); the
        error ("" if none). On an error the old ones keep serving."""
        try:
            default = self._default()
            ca = load_ca(self.ca_dir) if self.ca_dir is not None else None
        except (OSError, ssl.SSLError, CaError) as exc:
            return f"block page certificate: {exc}"
        self.default = default
        if ca is not None and (self.cache is None or ca.pem != self.cache.ca.pem):
            self.cache = CertCache(ca, self.cache_size)  # a rotated CA: mint afresh
        return ""

    def _on_sni(self, conn: Any, server_name: str | None, ctx: ssl.SSLContext) -> int | None:
        client = PEER.get()
        cache = self.cache
        if server_name and client and cache is not None:
            name, reason = name_or_reason(server_name)
            try:
                blocked = not reason and self.is_blocked(client, name)
                if blocked:
                    conn.context = cache.context_for(name)
                    return None
            except Exception:  # the handshake fails closed, the listener goes on
                log.exception("block page TLS: cannot answer for %r", server_name)
                return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        if self.default is None:
            return REFUSED
        if ctx is not self.default:
            conn.context = self.default
        return None
