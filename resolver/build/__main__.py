"""The build child: `python -m resolver.build POLICY [NOW]` compiles once (overlay entries as of
Unix time NOW, the clock by default) and prints one JSON line, {"ok": true, "snapshot": PATH,
"warnings": [...], "compiled": bool, "seconds": float, "overlay_expiry": float | null} or
{"ok": false, "errors": [...]}. A crash exits non-zero with the traceback on stderr."""

from __future__ import annotations

import json
import sys

from resolver.build.compile import build_snapshot
from resolver.yamlsource import ConfigError


def main(path: str, now: float | None = None) -> dict[str, object]:
    try:
        built = build_snapshot(path, now)
    except ConfigError as exc:
        return {"ok": False, "errors": [str(p) for p in exc.errors or exc.problems]}
    except OSError as exc:
        return {"ok": False, "errors": [f"cannot write the build: {exc}"]}
    return {
        "ok": True,
        "snapshot": str(built.path),
        "warnings": [str(p) for p in built.warnings],
        "compiled": built.compiled,
        "seconds": round(built.seconds, 3),
        "overlay_expiry": built.overlay_expiry,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else None)))
