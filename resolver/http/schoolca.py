"""The school's own certificate authority: made on the box, so managed devices that trust it see
the block page over HTTPS instead of a certificate error.

`safe-resolver ca init` writes `ca.key` (mode 0600: the service user only) and `ca.crt` into a
folder of the state directory (`blockpage.ca`). The key can sign a certificate for any name, so
it never leaves the box: devices get the certificate only. X.509 name constraints cannot help
(the names it must sign are whatever sites a policy blocks); rotating it is `ca init --force`
and installing the new certificate on the devices.

The block-page listener mints short-lived leaf certificates from it (`mint`): ECDSA P-256 (a
signature and a handshake cost a fraction of RSA's), valid for LEAF_LIFETIME, for one exact name.
Everything here uses the `cryptography` package; nothing runs openssl.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from resolver.fileio import atomic_write

CERT_FILE = "ca.crt"
KEY_FILE = "ca.key"
CA_LIFETIME = datetime.timedelta(days=3650)  # devices keep trusting it for ten years
LEAF_LIFETIME = datetime.timedelta(days=2)  # a minted certificate's validity
BACKDATE = datetime.timedelta(hours=1)  # devices whose clock runs a little slow accept it too


# A CA signs certificates (and revocation lists); it never serves TLS itself.
CA_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


class CaError(Exception):
    """The CA folder cannot be used; the message says what to do."""


@dataclass(frozen=True, slots=True)
class SchoolCa:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    pem: bytes  # the certificate, PEM: what devices install

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate, as devices show it (AB:CD:...)."""
        return ":".join(f"{b:02X}" for b in hashlib.sha256(self.der).digest())

    @property
    def name(self) -> str:
        names = self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else ""


def init_ca(folder: Path, organisation: str, *, force: bool = False) -> SchoolCa:
    """Make a new CA in `folder` (created 0700); FileExistsError when one is there and not
    `force`. Run as root on a folder owned by the service user, the files are given to that
    user (only it, and root, can read the key)."""
    key_path, cert_path = folder / KEY_FILE, folder / CERT_FILE
    if not force and (key_path.exists() or cert_path.exists()):
        raise FileExistsError(
            f"{folder} already holds a CA; `ca init --force` replaces it (every device must "
            "then install the new certificate)"
        )
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    owner = _owner_of(folder.parent)
    if owner is not None:
        os.chown(folder, *owner)
    key = ec.generate_private_key(ec.SECP256R1())
    label = organisation.strip() or "safe-resolver"
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, f"{label} (safe-resolver block page CA)"[:64]),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, label[:64]),
    ])  # fmt: skip
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    _write(key_path, key_pem, 0o600, owner)
    _write(cert_path, pem, 0o644, owner)
    return SchoolCa(cert, key, pem)


def load_ca(folder: Path) -> SchoolCa:
    """The CA in `folder`; CaError when it is missing, unreadable, readable by others than
    its owner, or not a CA key pair."""
    key_path, cert_path = folder / KEY_FILE, folder / CERT_FILE
    try:
        mode = key_path.stat().st_mode
        key_pem, pem = key_path.read_bytes(), cert_path.read_bytes()
    except FileNotFoundError as exc:
        raise CaError(
            f"no CA in {folder} ({exc.filename} is missing): run `safe-resolver ca init`"
        ) from None
    except OSError as exc:
        raise CaError(f"cannot read the CA in {folder}: {exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CaError(
            f"{key_path} is readable by others (mode {stat.S_IMODE(mode):04o}): it can sign "
            f"for any site; `chmod 600 {key_path}`"
        )
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
        cert = x509.load_pem_x509_certificate(pem)
    except (ValueError, TypeError) as exc:
        raise CaError(f"{folder}: not a PEM key and certificate: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CaError(f"{key_path}: expected an ECDSA key (made by `safe-resolver ca init`)")
    if cert.public_key() != key.public_key():
        raise CaError(f"{cert_path} and {key_path} do not belong together")
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CaError(f"{cert_path} is not a CA certificate")
    return SchoolCa(cert, key, pem)


def mint(
    ca: SchoolCa, key: ec.EllipticCurvePrivateKey, name: str, now: datetime.datetime
) -> tuple[bytes, datetime.datetime]:
    """A certificate for exactly `name` signed by `ca` over `key`'s public half: (PEM, expiry).

    Only what browsers require of a server certificate: the name as subjectAltName (the
    common name is ignored), serverAuth, the CA's key identifier for path building."""
    until = now + LEAF_LIFETIME
    public = key.public_key()
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64])]))
        .issuer_name(ca.cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(until)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), until


def _owner_of(folder: Path) -> tuple[int, int] | None:
    """(uid, gid) to give new files when root makes them in the service user's folder."""
    if os.geteuid() != 0:
        return None
    try:
        info = folder.stat()
    except OSError:
        return None
    return None if info.st_uid == 0 else (info.st_uid, info.st_gid)


def _write(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    """Replace `path` with `data` (atomic_write's temp file is 0600 from the start, so the key
    is never readable by others, even for a moment), then set its mode and owner."""
    atomic_write(path, data)
    os.chmod(path, mode)
    if owner is not None:
        os.chown(path, *owner)
