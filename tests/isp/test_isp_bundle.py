"""Policy bundles by plain calls (resolver/build/bundle.py) and the `bundle` commands: a bundle
carries the policy and every file it reads and builds the same decisions where it is unpacked;
a tampered member, a wrong key, a missing signature, a wrong pin, a path out of the folder, a
link or garbage are each refused with their reason, leaving nothing behind."""

from __future__ import annotations

import base64
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from isp_support import BLOCKED, CASINO, FAMILY, STANDARD, bundled_policy, keypair, retar
from support.resolver_proc import REPO

from resolver.build.bundle import (
    BundleError,
    file_sha256,
    make_bundle,
    parse_public_key,
    verify_and_unpack,
)
from resolver.build.compile import compile_policy
from resolver.policy.compile import PolicyError
from resolver.policy.decide import decide
from resolver.policy.decision import Action


def _fetched(folder: Path) -> None:
    """What `lists update` leaves in the lists folder for the `far` source."""
    (folder / "lists").mkdir(exist_ok=True)
    (folder / "lists" / "far.list").write_text("far.w.example.org\n")


def _unpack(archive: Path, tmp: Path, **pin: object) -> Path:
    return verify_and_unpack(
        archive, tmp / "versions", tmp / "index-cache", max_bytes=1 << 20, **pin
    ).policy  # type: ignore[arg-type]


def test_a_bundle_carries_the_policy_and_its_files(tmp_path: Path) -> None:
    host = tmp_path / "host"
    source = bundled_policy(host)
    _fetched(host)
    key, _, public = keypair(tmp_path)
    made = make_bundle(source, tmp_path / "b.tar.gz", key, "v1")
    assert made.signed and made.version == "v1" and made.sha256 == file_sha256(made.path)
    with tarfile.open(made.path) as tar:
        names = tar.getnames()
    assert names[:3] == ["manifest.json", "manifest.sig", "policy.yaml"]
    assert "lists/far.list" in names and any(n.endswith("-extra.txt") for n in names)

    unpacked = _unpack(made.path, tmp_path / "instance", public_key=public)
    assert (unpacked.parent / "lists" / "index-cache").is_symlink()
    snapshot = compile_policy(unpacked)
    for client, name, blocked in (
        (FAMILY, CASINO, True),
        (FAMILY, "far.w.example.org", True),
        (FAMILY, BLOCKED, True),
        (STANDARD, CASINO, False),
    ):
        decision = decide(snapshot, client, name, 1, 0.0)
        assert (decision.action is not Action.ALLOW) == blocked, (client, name, decision)


def test_refusals_name_their_reason_and_leave_nothing(tmp_path: Path) -> None:
    source = bundled_policy(tmp_path / "host")
    key, _, public = keypair(tmp_path)
    _, _, other_public = keypair(tmp_path, "other")
    good = make_bundle(source, tmp_path / "good.tar.gz", key)
    unsigned = make_bundle(source, tmp_path / "unsigned.tar.gz")
    instance = tmp_path / "instance"

    def refused(archive: Path, reason: str, **pin: object) -> None:
        with pytest.raises(BundleError) as caught:
            _unpack(archive, instance, **pin)
        assert caught.value.reason == reason, caught.value
        assert not list((instance / "versions").glob("*"))

    def policy_bytes(name: str, data: bytes) -> bytes:
        return data.replace(b"nxdomain", b"refused") if name == "policy.yaml" else data

    refused(retar(good.path, tmp_path / "t1.tar.gz", policy_bytes), "hash", public_key=public)
    refused(good.path, "signature", public_key=other_public)
    refused(unsigned.path, "signature", public_key=public)
    refused(good.path, "hash", sha256="0" * 64)
    extra = retar(good.path, tmp_path / "t2.tar.gz", add=("files/99-more.txt", b"x\n"))
    refused(extra, "files", public_key=public)
    escape = retar(good.path, tmp_path / "t3.tar.gz", add=("../escape.txt", b"x\n"))
    refused(escape, "format", public_key=public)
    cache = retar(good.path, tmp_path / "t4.tar.gz", add=("lists/index-cache/x.idx", b"x"))
    refused(cache, "format", public_key=public)
    link = retar(good.path, tmp_path / "t5.tar.gz", link=("files/link", "/etc/passwd"))
    refused(link, "format", public_key=public)
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"\x1f\x8b\x08" + bytes(200))
    refused(garbage, "format", public_key=public)
    with pytest.raises(BundleError) as caught:
        verify_and_unpack(
            good.path, instance / "versions", instance / "index-cache", public_key=public,
            max_bytes=100,
        )  # fmt: skip
    assert caught.value.reason == "size"
    # Signed by the right key and pinned right, both are used.
    assert _unpack(good.path, instance, public_key=public).is_file()
    assert _unpack(unsigned.path, instance, sha256=unsigned.sha256).is_file()


def test_a_policy_that_would_not_go_live_is_not_bundled(tmp_path: Path) -> None:
    source = bundled_policy(tmp_path)
    (tmp_path / "extra.txt").unlink()
    with pytest.raises(PolicyError, match=r"cannot bundle lists\.sources"):
        make_bundle(source, tmp_path / "b.tar.gz")
    bad = tmp_path / "bad.yaml"
    bad.write_text(source.read_text().replace("default: standard", "default: nobody"))
    with pytest.raises(PolicyError):
        make_bundle(bad, tmp_path / "b.tar.gz")
    assert not (tmp_path / "b.tar.gz").exists()


def test_public_keys_as_pem_or_raw_base64(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    pem = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    assert parse_public_key(pem) == raw == parse_public_key(base64.b64encode(raw).decode())
    for bad in ("not a key", base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError):
            parse_public_key(bad)


def test_the_commands(tmp_path: Path) -> None:
    source = bundled_policy(tmp_path / "host")
    key, _, public = keypair(tmp_path)
    pub = tmp_path / "key.pub"
    pub.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "resolver", "bundle", *args],
            capture_output=True, text=True, cwd=REPO, timeout=60,
        )  # fmt: skip

    out = tmp_path / "b.tar.gz"
    made = run(
        "make", "--policy", str(source), "--key", str(key), "--version", "v7", "-o", str(out)
    )
    assert made.returncode == 0, made.stderr
    assert "version v7" in made.stdout and file_sha256(out) in made.stdout
    good = run("verify", str(out), "--public-key", base64.b64encode(public).decode())
    assert good.returncode == 0 and "good, version v7" in good.stdout, good.stderr
    wrong = run("verify", str(out), "--public-key", str(pub))
    assert wrong.returncode == 1 and "refused (signature)" in wrong.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nclients: {default: x}\n")
    assert run("make", "--policy", str(broken), "-o", str(out)).returncode == 1
