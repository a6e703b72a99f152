"""The reload's compile worker: a fresh process at idle CPU priority, its failures reported,
and the holder swapping policies only on a good compile."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path

import pytest

from resolver.match.index import SMALL
from resolver.match.packed import SPARE, PackedNames
from resolver.reload import PolicyHolder
from resolver.stats import Stats
from resolver.worker import WorkerFailed, child_cpus, run_idle

POLICY = """\
version: 1
clients: {default: kids}
profiles:
  kids: {age: unrestricted, block: [adult], block_mode: nxdomain}
lists:
  dir: lists
  catalogue_sources: false
  sources:
    - {id: local-adult, category: adult, path: local.txt, format: domains}
"""


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
    with pytest.raises(WorkerFailed, match="exited with status 3"):
        run_idle("support.idle_probe", "exit", "3")


def test_a_killed_child_is_reported() -> None:
    with pytest.raises(WorkerFailed, match=f"killed by signal {int(signal.SIGKILL)}"):
        run_idle("support.idle_probe", "signal", str(int(signal.SIGKILL)))


def test_reload_swaps_on_a_good_compile_and_keeps_the_old_policy_on_a_bad_one(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    (tmp_path / "local.txt").write_text("first-blocked.test\n")
    holder = PolicyHolder(policy, Stats())
    holder.load_initial()
    assert holder.current is not None
    assert holder.current.index.lookup_name("first-blocked.test")

    (tmp_path / "local.txt").write_text("second-blocked.test\n")
    result = asyncio.run(holder.reload())
    assert result["ok"] and result["generation"] == 2
    assert holder.current.index.lookup_name("second-blocked.test")
    assert not holder.current.index.lookup_name("first-blocked.test")

    good = holder.current
    policy.write_text(POLICY.replace("block_mode: nxdomain", "block_mode: sideways"))
    result = asyncio.run(holder.reload())
    assert not result["ok"] and result["generation"] == 2
    assert "block_mode" in result["error"]
    assert holder.current is good


def test_reloads_in_quick_succession_load_into_the_retired_region(tmp_path: Path) -> None:
    """A retired index's region is kept for the next reload (no fresh memory to fault in), and
    unmapped when no reload came for `spare_seconds`."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    names = [f"host{n}.blocked{n % 997}.test" for n in range(SMALL + 5_000)]
    (tmp_path / "local.txt").write_text("\n".join(names) + "\n")
    holder = PolicyHolder(policy, Stats())
    holder.load_initial()
    first = holder.current.index.names
    assert isinstance(first, PackedNames)  # big enough for the packed table
    holder.spare_seconds = 3600.0  # the test fires the timer itself: no race with the clock

    async def two_reloads_then_quiet() -> tuple[object, object, int, int]:
        assert (await holder.reload())["ok"]
        second = holder.current.index.names.region
        assert (await holder.reload())["ok"]
        kept = len(SPARE)
        timer = holder._spare_timer
        assert timer is not None
        assert timer.when() - asyncio.get_running_loop().time() > 3000  # armed for spare_seconds
        released = holder.release_spares_now()  # what the timer does when it fires
        assert released is not None
        await asyncio.wrap_future(released)
        return second, holder.current.index.names.region, kept, len(SPARE)

    second, third, kept, left = asyncio.run(two_reloads_then_quiet())
    assert third is first.region and second is not first.region  # loaded into the retired one
    assert kept == 1 and left == 0
    assert second.closed and not third.closed
    assert holder.current.index.lookup_name("www.host7.blocked7.test")
    assert not holder.current.index.lookup_name("host7.blocked8.test")
