"""A trial compile of a policy file: `safe-resolver check`'s verdict plus `explain` of samples.

Run as a child (`python -m resolver.build.trial COPY SHOWN SAMPLES_JSON`, through
`resolver.build.child.run_idle`) by the dashboard's policy editor before a save: compiling reads
every list, which must neither hold the server's event loop nor its memory. COPY is the edited
text in a temporary file beside the policy (its relative paths mean the same); every message
names SHOWN, the policy file the admin edits, instead. Prints one JSON document:
{ok, problems: [{file, line, column, message, severity}], expect_failures, explain: [...]};
exit status 0 whatever the verdict (a crash is the only failure).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from resolver.build.compile import compile_policy
from resolver.build.listfile import rule_line
from resolver.policy.compile import PolicyError
from resolver.policy.explain import explain_report
from resolver.policy.snapshot import PolicySnapshot
from resolver.yamlsource import Problem

MAX_SAMPLES = 20


def check_policy(path: Path | str) -> tuple[PolicySnapshot | None, list[Problem], list[str]]:
    """What `safe-resolver check` decides: the compile's problems (errors and warnings) and the
    policy's own `expect` samples that fail. The snapshot is None when it does not compile."""
    try:
        snapshot = compile_policy(path)
    except PolicyError as exc:
        return None, exc.problems, []
    return snapshot, list(snapshot.warnings), snapshot.check_expectations()


def trial(copy: Path, samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The verdict on `copy` and, when it compiles, each sample explained against it now."""
    snapshot, problems, failures = check_policy(copy)
    explained: list[dict[str, Any]] = []
    if snapshot is not None:
        when = datetime.now(snapshot.timezone)
        for sample in samples[:MAX_SAMPLES]:
            try:
                explained.append(explain_report(
                    snapshot, str(sample.get("client", "")), str(sample.get("name", "")),
                    str(sample.get("type", "A")), when, rule_line,
                ))  # fmt: skip
            except ValueError as exc:
                explained.append({"name": sample.get("name"), "error": str(exc)})
    errors = [p for p in problems if p.severity == "error"]
    return {
        "ok": snapshot is not None and not errors and not failures,
        "problems": [p.as_dict() for p in problems],
        "expect_failures": failures,
        "explain": explained,
    }


def main(argv: list[str]) -> int:
    copy, shown, samples = Path(argv[0]), argv[1], json.loads(argv[2])
    samples = [s for s in samples if isinstance(s, dict)] if isinstance(samples, list) else []
    text = json.dumps(trial(copy, samples))
    # The copy's name means nothing to the admin: every message names the file being edited.
    print(text.replace(json.dumps(str(copy))[1:-1], json.dumps(shown)[1:-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
