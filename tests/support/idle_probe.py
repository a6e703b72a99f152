"""Child for tests/reload: prints its scheduling policy and the CPUs it may run on, then exits
as argv asks ("exit N" or "signal N")."""

from __future__ import annotations

import os
import sys

print(os.sched_getscheduler(0))
print(",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(0))))
sys.stdout.flush()
if sys.argv[1:2] == ["exit"]:
    raise SystemExit(int(sys.argv[2]))
if sys.argv[1:2] == ["signal"]:
    os.kill(os.getpid(), int(sys.argv[2]))
