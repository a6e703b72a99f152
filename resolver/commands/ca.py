"""`safe-resolver ca init`: make the school CA that lets managed devices see the block page over
HTTPS (resolver/http/schoolca.py). Opt-in: nothing uses a CA until `blockpage.ca` names it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from resolver.config import ServerConfig, load_config
from resolver.http.schoolca import init_ca
from resolver.yamlsource import ConfigError


def init_command(args: argparse.Namespace) -> int:
    """Exit 0 with the CA written, 2 on a bad config or folder, 1 when a CA exists already."""
    try:
        cfg = load_config(args.config) if args.config else ServerConfig()
    except (OSError, ConfigError) as exc:
        print(f"safe-resolver ca init: cannot read config: {exc}", file=sys.stderr)
        return 2
    folder = Path(args.dir) if args.dir else cfg.blockpage.ca
    if folder is None:
        print(
            "safe-resolver ca init: give --dir, or --config with blockpage.ca set", file=sys.stderr
        )
        return 2
    organisation = args.name if args.name is not None else cfg.organisation.name
    try:
        ca = init_ca(folder, organisation, force=args.force)
    except FileExistsError as exc:
        print(f"safe-resolver ca init: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"safe-resolver ca init: {folder}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"{folder}: CA {ca.name!r} made (key readable by its owner only)")
    print(f"SHA-256 fingerprint {ca.fingerprint}")
    print(
        "Set blockpage.ca to this folder and reload; devices install the certificate from the "
        "device set-up page (or http://<block page>/.well-known/safe-resolver/school-ca.crt)."
    )
    return 0
