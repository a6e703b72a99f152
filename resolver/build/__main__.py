"""The build child: `python -m resolver.build POLICY` compiles once and prints one JSON line,
{"ok": true, "snapshot": PATH, "warnings": [...], "compiled": bool, "seconds": float} or
{"ok": false, "errors": [...]}. A crash exits non-zero with the traceback on stderr."""

from __future__ import annotations

import json
import sys

from resolver.build.compile import build_snapshot
from resolver.yamlsource import ConfigError


def main(path: str) -> dict[str, object]:
    try:
        built = build_snapshot(path)
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
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
