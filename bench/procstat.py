"""What the kernel counts for a process or a core, read from /proc (Linux only)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of ``pid`` so far (/proc/<pid>/stat utime + stime)."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        # the command name (field 2) may hold spaces: count fields from after its closing ")"
        fields = stat.read().rsplit(b")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / TICKS_PER_SECOND


def rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` now, 0 if it is gone."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass(frozen=True, slots=True)
class CoreTimes:
    """One core's counters from /proc/stat, in clock ticks."""

    busy: int
    steal: int
    total: int


def core_times() -> dict[int, CoreTimes]:
    """Every core's counters now (``cpuN`` lines of /proc/stat)."""
    cores: dict[int, CoreTimes] = {}
    with open("/proc/stat") as stat:
        for line in stat:
            name, *values = line.split()
            if not name.startswith("cpu") or name == "cpu":
                continue
            user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in values[:8])
            busy = user + nice + system + irq + softirq
            cores[int(name[3:])] = CoreTimes(busy, steal, busy + idle + iowait + steal)
    return cores


def core_load(before: dict[int, CoreTimes], after: dict[int, CoreTimes]) -> dict[int, dict[str, float]]:
    """Per core over a window: busy and stolen (by the hypervisor) as shares of the window's ticks."""
    load: dict[int, dict[str, float]] = {}
    for core, end in after.items():
        start = before.get(core)
        if start is None or end.total == start.total:
            continue
        span = end.total - start.total
        load[core] = {"busy": round((end.busy - start.busy) / span, 3), "steal": round((end.steal - start.steal) / span, 3)}
    return load


class RssSampler:
    """Peak resident memory of a process, sampled from /proc while a run is going."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, rss_kb(self.pid))
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, rss_kb(self.pid))
