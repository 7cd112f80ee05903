"""Round-robin timing for the speed scripts: every method once per round, best wall and CPU time of each.

On a shared machine a slow phase hits whatever runs during it. Calling the methods in turn, round after
round, exposes all of them to the same phases, and the fastest round of each is its least disturbed
time. The CPU time of the process (``time.process_time``) is reported next to the wall time: with one
thread it counts only the time the process actually ran, so it moves much less with the machine's load
(it still includes the cost of caches that other processes evicted).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Timing:
    """Best (least disturbed) wall-clock and CPU seconds of one method over the rounds."""

    wall: float
    cpu: float


def rounds(methods: dict[str, Callable[[], object]], repeat: int) -> dict[str, Timing]:
    """Call every method once per round, ``repeat`` rounds; return each method's best wall and CPU time."""
    walls: dict[str, list[float]] = {name: [] for name in methods}
    cpus: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeat):
        for name, fn in methods.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            cpus[name].append(time.process_time() - cpu)
            walls[name].append(time.perf_counter() - wall)
    return {name: Timing(min(walls[name]), min(cpus[name])) for name in methods}


def load_average() -> str:
    """The 1-minute load average and the number of CPUs, for the record of every run."""
    try:
        one, _, _ = os.getloadavg()
    except OSError:  # pragma: no cover - not on every platform
        return "load average unknown"
    return f"load average {one:.1f} on {os.cpu_count()} CPUs"


def spin_note(threads: int) -> str:
    """A warning for runs with several OpenMP threads on a loaded machine ("" when it does not apply).

    With OpenMP's default wait policy each thread spins at every barrier until the others arrive; when
    other processes hold the cores, a run of many small parallel operations (a chunked explanation) waits
    at each of them: measured 7x slower at 1M rows on 2 cores at load 1.7 than with ``OMP_WAIT_POLICY=PASSIVE``.
    """
    try:
        one, _, _ = os.getloadavg()
    except OSError:  # pragma: no cover - not on every platform
        return ""
    # fewer idle CPUs than threads: some thread waits for a core at each barrier
    if threads > 1 and one + threads > (os.cpu_count() or 1) + 0.5 and "OMP_WAIT_POLICY" not in os.environ:
        return ("note: fewer idle CPUs than threads, and OpenMP threads with the default (spinning) wait policy: "
                "rerun with OMP_WAIT_POLICY=PASSIVE (or on a quiet machine) for meaningful ratios")
    return ""
