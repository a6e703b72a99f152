"""`safe-resolver bundle make` (on the policy host) and `bundle verify` (anywhere)."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from resolver.build.bundle import BundleError, make_bundle, parse_public_key, verify_and_unpack
from resolver.yamlsource import ConfigError


def make_command(args: argparse.Namespace) -> int:
    """Exit 0 with the bundle written, 1 when the policy must not be published, 2 on a bad
    key or an unwritable output."""
    try:
        made = make_bundle(
            Path(args.policy), Path(args.output), Path(args.key) if args.key else None,
            args.version,
        )  # fmt: skip
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"safe-resolver bundle make: {exc}", file=sys.stderr)
        return 2
    signed = "signed" if made.signed else "unsigned: pin its sha256"
    print(f"{made.path}: version {made.version}, {made.files} files, {signed}")
    print(f"sha256 {made.sha256}")
    return 0


def verify_command(args: argparse.Namespace) -> int:
    """Exit 0 when the bundle would be used, 1 when it would be refused, 2 on bad arguments."""
    if (args.public_key is None) == (args.sha256 is None):
        print("safe-resolver bundle verify: give --public-key or --sha256", file=sys.stderr)
        return 2
    key = None
    if args.public_key is not None:
        text = args.public_key
        try:
            if Path(text).is_file():
                text = Path(text).read_text()
            key = parse_public_key(text)
        except (OSError, ValueError) as exc:
            print(f"safe-resolver bundle verify: {exc}", file=sys.stderr)
            return 2
    archive = Path(args.bundle)
    work = Path(tempfile.mkdtemp(prefix="bundle-verify-"))
    try:
        size = archive.stat().st_size
        unpacked = verify_and_unpack(
            archive, work / "versions", work / "index-cache", sha256=args.sha256,
            public_key=key, max_bytes=size,
        )  # fmt: skip
    except BundleError as exc:
        print(f"{archive}: refused ({exc.reason}): {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"safe-resolver bundle verify: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{archive}: good, version {unpacked.version}, sha256 {unpacked.sha256}")
    return 0
