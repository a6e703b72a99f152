"""`safe-resolver serve`: read the configuration and run the supervisor (`resolver.supervisor`).

A bad file or flag is reported as `file:line:column: message` and the process exits 2 before
anything is built or bound.
"""

from __future__ import annotations

import argparse
import sys

from resolver import logs
from resolver.config import apply_overrides, load_config
from resolver.yamlsource import ConfigError


def serve_command(args: argparse.Namespace) -> int:
    try:
        cfg = apply_overrides(
            load_config(args.config),
            listen=args.listen,
            upstreams=args.upstream,
            policy=args.policy,
            blockpage_listen=args.blockpage_listen,
            admin_listen=args.admin_listen,
            log_level=args.log_level,
            workers=args.workers,
            dot_listen=args.dot_listen,
            doh_listen=args.doh_listen,
            doq_listen=args.doq_listen,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            proxy_protocol_from=args.proxy_protocol_from,
        )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    logs.setup(cfg.log_level)
    import uvloop  # the serving processes' event loop

    from resolver.supervisor import serve

    return uvloop.run(serve(cfg))
