"""The build child: a fresh process at idle CPU priority, off the server's pinned core, its
failures reported."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from resolver.build.child import ChildFailed, child_cpus, run_idle


def test_the_child_runs_at_idle_priority_and_hands_back_its_output() -> None:
    assert run_idle("support.idle_probe").splitlines()[0] == str(os.SCHED_IDLE)


@pytest.mark.parametrize(
    ("ours", "cpu_count", "expected"),
    [
        ({0}, 2, {1}),  # pinned to one core: the child takes the other
        ({0, 1}, 4, {2, 3}),
        ({0, 1}, 2, {0, 1}),  # free to use every CPU: so is the child
        ({0}, 1, {0}),
    ],
)
def test_the_child_runs_beside_a_pinned_server_not_on_its_core(
    ours: set[int], cpu_count: int, expected: set[int]
) -> None:
    assert child_cpus(ours, cpu_count) == expected


@pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin the parent to one"
)
def test_a_child_started_from_a_pinned_thread_leaves_the_pinned_core() -> None:
    """On Linux the affinity belongs to the thread, as with the server pinned by `taskset`."""
    pinned = min(os.sched_getaffinity(0))
    output: list[str] = []

    def pinned_launch() -> None:
        os.sched_setaffinity(0, {pinned})
        output.append(run_idle("support.idle_probe"))

    launcher = threading.Thread(target=pinned_launch)
    launcher.start()
    launcher.join()
    cpus = {int(cpu) for cpu in output[0].splitlines()[1].split(",")}
    assert cpus and pinned not in cpus


def test_an_error_status_is_reported() -> None:
    with pytest.raises(ChildFailed, match="exited with status 3"):
        run_idle("support.idle_probe", "exit", "3")


def test_a_killed_child_is_reported() -> None:
    with pytest.raises(ChildFailed, match=f"killed by signal {int(signal.SIGKILL)}"):
        run_idle("support.idle_probe", "signal", str(int(signal.SIGKILL)))
