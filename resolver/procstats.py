"""Process metrics every serving process reports about itself: memory, file descriptors, CPU,
and how late its event loop runs.

Why each process samples itself: prometheus-client's `ProcessCollector` describes the process
that is scraped (the supervisor), and the workers hold the DNS sockets, the cache and the
mapped lists. A worker samples `/proc/self` (through the same collector code) once a second and
ships it with its counters; the supervisor shows every live process under one `process` label.

Event-loop lag: a probe sleeps LAG_INTERVAL and measures how much later than asked it woke up.
A loop busy with one long callback (a slow reload step, a huge batch) delays every query by as
much; the worst lateness since the last sample is the gauge.
"""

from __future__ import annotations

import asyncio

from prometheus_client import ProcessCollector

from resolver.stats import ProcessSample

LAG_INTERVAL = 0.1  # seconds between the probe's wake-ups

_FIELDS = {
    "process_resident_memory_bytes": "resident_bytes",
    "process_open_fds": "open_fds",
    "process_max_fds": "max_fds",
    "process_cpu_seconds_total": "cpu_seconds",
}


class LagProbe:
    """The worst event-loop lateness since the last `take()`."""

    def __init__(self) -> None:
        self.worst = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            due = loop.time() + LAG_INTERVAL
            await asyncio.sleep(LAG_INTERVAL)
            self.worst = max(self.worst, loop.time() - due)

    def take(self) -> float:
        worst, self.worst = self.worst, 0.0
        return worst


class ProcessSampler:
    """Samples this process (`/proc/self`) with prometheus-client's process collector."""

    def __init__(self) -> None:
        self._collector = ProcessCollector(registry=None)

    def sample(self, loop_lag: float) -> ProcessSample:
        """Resources now (zeros where /proc cannot be read) and the lag given."""
        out = ProcessSample(loop_lag=loop_lag)
        for family in self._collector.collect():
            for sample in family.samples:
                name = _FIELDS.get(sample.name)
                if name is not None:
                    setattr(out, name, float(sample.value))
        return out
