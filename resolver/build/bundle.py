"""Policy bundles: one policy host publishes the policy with every file it reads, and every
resolver of an ISP takes it from there (`bundle:` in the server config).

A bundle is a gzip'd tar:

    manifest.json   {"format", "version", "created", "policy", "files": {name: sha256}}
    manifest.sig    Ed25519 signature of manifest.json's bytes (absent in unsigned bundles)
    policy.yaml     the policy, its file paths rewritten to point inside the bundle
    files/NN-NAME   the files the policy names: operator lists, networks file, overlay...
    lists/NAME      the fetched copies in the policy's `lists.dir` (`lists update` output)

The curated core lists and the catalogue ship with the software and are not in it. An instance
trusts a bundle only once verified: its manifest signed by the pinned public key, or the whole
file matching a pinned SHA-256, and every member matching the manifest's hash. It is unpacked
into a fresh folder named by its hash, so the serving policy's files never change under it;
each folder's `lists/index-cache` is a link to one index cache for all of them, so lists whose
bytes did not change are not compiled again and last good copies survive across bundles.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import hashlib
import io
import json
import os
import secrets
import shutil
import tarfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import yaml

from resolver.build.compile import INDEX_CACHE, compile_policy
from resolver.fileio import fsync_dir
from resolver.lists.catalogue import lists_settings
from resolver.policy.compile import PolicyError
from resolver.yamlsource import Problem, load_yaml, load_yaml_text

FORMAT = "safe-resolver-bundle/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
POLICY = "policy.yaml"
MAX_MEMBERS = 100_000
MAX_MANIFEST = 64 * 1024 * 1024
MAX_VERSION = 64  # characters of a bundle's version label kept (it becomes a metric label)
UNPACKED_RATIO = 20  # a bundle may unpack to this many times its own size limit at most
CHUNK = 1 << 20
# Keys of a policy whose values are file paths (relative to the policy's folder).
PATH_KEYS: tuple[tuple[str, ...], ...] = (
    ("overlay",),
    ("safesearch",),
    ("clients", "networks_file"),
)
SOURCE_SECTIONS = ("lists", "mandated")  # each has `sources: [{path: ...}]`
# Refusal reasons (metric labels: a fixed set).
REASONS = ("hash", "signature", "format", "files", "size")


class BundleError(Exception):
    """A bundle that must not be used; `reason` is one of REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Made:
    path: Path
    sha256: str
    version: str
    files: int
    signed: bool


@dataclass(frozen=True, slots=True)
class Unpacked:
    """A verified bundle in its own folder."""

    sha256: str  # of the bundle file as fetched
    version: str  # the policy host's label
    root: Path  # the folder it was unpacked into
    policy: Path  # the policy file to build


# -- keys ----------------------------------------------------------------------------------------


def load_private_key(path: Path) -> Any:
    """The Ed25519 signing key from a PEM file (`openssl genpkey -algorithm ed25519`)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def parse_public_key(text: str) -> bytes:
    """The 32 raw bytes of an Ed25519 public key given as PEM (`openssl pkey -pubout`) or as
    the base64 of the raw key. Raises ValueError."""
    import base64
    import binascii

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_public_key,
    )

    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("expected a PEM public key or the base64 of a raw Ed25519 key") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, this one {len(raw)}")
    return raw


def _verify_signature(public_key: bytes, signature: bytes, data: bytes) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
    except InvalidSignature:
        raise BundleError("signature", "the manifest's signature does not verify") from None


# -- making (the policy host) --------------------------------------------------------------------


def make_bundle(policy: Path, out: Path, key: Path | None = None, version: str = "") -> Made:
    """Check `policy` as a reload would (compile, its own `expect` samples) and write it with
    every file it reads to `out` (atomically), signed with `key` when given. Raises
    PolicyError for a policy that must not be published, OSError for files."""
    snapshot = compile_policy(policy)
    failures = snapshot.check_expectations()
    if failures:
        raise PolicyError(
            [Problem(str(policy), 1, 1, f"policy expectations failed: {f}") for f in failures]
        )
    data = copy.deepcopy(load_yaml(policy).data)
    base = policy.parent
    files: dict[str, Path] = {}  # name in the bundle -> file on this host
    missing: list[str] = []

    def take(where: str, value: Any) -> str | None:
        if not isinstance(value, str):
            return None
        source = base / value
        if not source.is_file():
            missing.append(f"{where}: {source}: no such file")
            return None
        name = f"files/{len(files):02d}-{source.name}"
        files[name] = source
        return name

    for keys in PATH_KEYS:
        parent = _section(data, keys[:-1])
        if parent is None or keys[-1] not in parent:
            continue
        if keys == ("overlay",) and not (base / str(parent["overlay"])).exists():
            del parent["overlay"]  # no approvals yet
            continue
        parent[keys[-1]] = take(".".join(keys), parent[keys[-1]]) or parent[keys[-1]]
    for section in SOURCE_SECTIONS:
        for i, source in enumerate(_sources(data, section)):
            if "path" in source:
                source["path"] = take(f"{section}.sources[{i}].path", source["path"]) or ""
            tsig = _section(source, ("transfer", "tsig"))
            secret = tsig.get("secret_file") if tsig else None
            if isinstance(secret, str) and not Path(secret).is_absolute():
                missing.append(
                    f"{section}.sources[{i}].transfer.tsig.secret_file: {secret}: a TSIG secret "
                    "is never bundled; install it on every instance and give its absolute path"
                )
    lists_dir = lists_settings(data.get("lists") or {}, base).dir.resolve()
    for summary in snapshot.sources:
        path = Path(summary["path"]).resolve()
        if not path.is_relative_to(lists_dir):
            continue  # a core list (shipped with the software) or an operator file (above)
        if summary.get("stale"):
            missing.append(f"list {summary['id']}: {path}: missing (serving a last good copy)")
            continue
        files[f"lists/{path.relative_to(lists_dir).as_posix()}"] = path
    if missing:
        raise PolicyError([Problem(str(policy), 1, 1, f"cannot bundle {m}") for m in missing])
    if isinstance(data.get("lists"), dict):
        data["lists"]["dir"] = "lists"
    else:
        data["lists"] = {"dir": "lists"}
    text = (
        f"# Unpacked from a policy bundle of {policy.name}: edit the original on the policy host.\n"
        + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    )
    if load_yaml_text(text, POLICY).data != data:  # what the instances will read
        raise ValueError(f"{policy}: the policy does not survive rewriting its paths")
    return pack(out, text.encode(), files, key, version)


def _section(data: Any, keys: tuple[str, ...]) -> dict[str, Any] | None:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else None


def _sources(data: Any, section: str) -> list[dict[str, Any]]:
    found = _section(data, (section,))
    sources = found.get("sources") if found else None
    return [s for s in sources if isinstance(s, dict)] if isinstance(sources, list) else []


def pack(out: Path, policy: bytes, files: dict[str, Path], key: Path | None, version: str) -> Made:
    """Write a bundle of `policy` (the rewritten YAML) and `files` (name -> file) to `out`,
    atomically, signed with `key` when given. No checks: `make_bundle` makes them first."""
    signer = load_private_key(key) if key is not None else None
    created = time.time()
    hashes = {POLICY: hashlib.sha256(policy).hexdigest()}
    for name, path in sorted(files.items()):
        hashes[name] = file_sha256(path)
    manifest = json.dumps(
        {
            "format": FORMAT,
            "version": version or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(created)),
            "created": round(created, 3),
            "policy": POLICY,
            "files": hashes,
        },
        indent=1,
        sort_keys=True,
    ).encode()
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            _add_bytes(tar, MANIFEST, manifest, created)
            if signer is not None:
                _add_bytes(tar, SIGNATURE, signer.sign(manifest), created)
            _add_bytes(tar, POLICY, policy, created)
            for name, path in sorted(files.items()):
                info = tar.gettarinfo(str(path), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mode = 0o644
                with path.open("rb") as f:
                    tar.addfile(info, f)
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return Made(
        out, file_sha256(out), json.loads(manifest)["version"], len(hashes), signer is not None
    )


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(mtime), 0o644
    tar.addfile(info, io.BytesIO(data))


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# -- verifying and unpacking (every instance) ----------------------------------------------------


def verify_and_unpack(
    archive: Path,
    into: Path,
    index_cache: Path,
    *,
    sha256: str | None = None,
    public_key: bytes | None = None,
    max_bytes: int,
) -> Unpacked:
    """Verify the bundle file `archive` and unpack it into `into`/<its hash>; raises
    BundleError (nothing is left behind) when it must not be used. `sha256` pins the whole
    file; `public_key` checks the manifest's signature; either way every member must match the
    manifest. Blocks for as long as hashing the bundle takes: call it from a thread."""
    if sha256 is None and public_key is None:
        raise ValueError("a bundle is verified by a pinned sha256 or a public key")
    size = archive.stat().st_size
    if size > max_bytes:
        raise BundleError("size", f"the bundle is {size} bytes, over max_bytes {max_bytes}")
    digest = file_sha256(archive)
    if sha256 is not None and digest != sha256.lower():
        raise BundleError("hash", f"the bundle's sha256 is {digest}, not the pinned {sha256}")
    into.mkdir(parents=True, exist_ok=True)
    final = into / digest[:16]
    work = into / f".unpack-{secrets.token_hex(4)}"
    work.mkdir()
    try:
        manifest, signature, hashes = _extract(archive, work, max_bytes * UNPACKED_RATIO)
        if public_key is not None:
            if signature is None:
                raise BundleError("signature", "the bundle is not signed (no manifest.sig)")
            _verify_signature(public_key, signature, manifest)
        meta = _manifest(manifest)
        if set(meta["files"]) != set(hashes):
            extra = sorted(set(hashes) - set(meta["files"]))[:3]
            absent = sorted(set(meta["files"]) - set(hashes))[:3]
            raise BundleError(
                "files", f"members and manifest differ: extra {extra}, missing {absent}"
            )
        for name, expected in meta["files"].items():
            if hashes[name] != expected:
                raise BundleError("hash", f"{name}: sha256 does not match the manifest")
        lists = work / "lists"
        lists.mkdir(exist_ok=True)
        index_cache.mkdir(parents=True, exist_ok=True)
        (lists / INDEX_CACHE).symlink_to(index_cache.resolve(), target_is_directory=True)
        if final.exists():  # the same bundle, unpacked before: that copy is complete
            shutil.rmtree(work)
        else:
            fsync_dir(work)
            os.rename(work, final)
            fsync_dir(into)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Unpacked(digest, meta["version"], final, final / meta["policy"])


def _extract(archive: Path, work: Path, limit: int) -> tuple[bytes, bytes | None, dict[str, str]]:
    """Stream the members into `work`, hashing each: (manifest, signature, {name: sha256})."""
    manifest: bytes | None = None
    signature: bytes | None = None
    hashes: dict[str, str] = {}
    total = 0
    try:
        with tarfile.open(archive, "r|gz") as tar:
            for count, member in enumerate(tar, 1):
                name = _member_name(member, count)
                if name in hashes or (name == MANIFEST and manifest is not None):
                    raise BundleError("format", f"{name}: twice in the bundle")
                total += member.size
                if total > limit:
                    raise BundleError("size", f"the bundle unpacks to more than {limit} bytes")
                stream = tar.extractfile(member)
                assert stream is not None  # a regular file
                if name in (MANIFEST, SIGNATURE):
                    if member.size > MAX_MANIFEST:
                        raise BundleError("size", f"{name}: {member.size} bytes")
                    if name == MANIFEST:
                        manifest = stream.read()
                    else:
                        signature = stream.read()
                    continue
                hashes[name] = _store(stream, work / name)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BundleError("format", f"not a readable tar.gz: {exc}") from None
    if manifest is None:
        raise BundleError("format", "no manifest.json in the bundle")
    return manifest, signature, hashes


def _member_name(member: tarfile.TarInfo, count: int) -> str:
    """A member's name, refused unless a plain relative path to a regular file."""
    if count > MAX_MEMBERS:
        raise BundleError("format", f"more than {MAX_MEMBERS} members")
    name = member.name
    parts = PurePosixPath(name).parts
    if (
        not member.isreg()
        or not parts
        or name.startswith("/")
        or "\\" in name
        or any(p in ("", ".", "..") for p in parts)
        or parts[:2] == ("lists", INDEX_CACHE)
    ):
        raise BundleError("format", f"member {name[:100]!r} is not a plain file path")
    return PurePosixPath(*parts).as_posix()


def _store(stream: IO[bytes], path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    with path.open("xb") as out:
        for block in _blocks(stream):
            h.update(block)
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    return h.hexdigest()


def _blocks(stream: IO[bytes]) -> Iterator[bytes]:
    while block := stream.read(CHUNK):
        yield block


def _manifest(raw: bytes) -> dict[str, Any]:
    try:
        meta = json.loads(raw)
    except ValueError:
        raise BundleError("format", "manifest.json is not JSON") from None
    if not isinstance(meta, dict):
        raise BundleError("format", f"manifest.json is not a {FORMAT} manifest")
    files, version = meta.get("files"), meta.get("version")
    if (
        meta.get("format") != FORMAT
        or not isinstance(files, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
        or not isinstance(version, str)
        or not version.isprintable()
        or meta.get("policy") not in files
    ):
        raise BundleError("format", f"manifest.json is not a {FORMAT} manifest")
    meta["version"] = version[:MAX_VERSION]
    return meta
