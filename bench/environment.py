"""The machine the benchmark runs on, as the report describes it: hardware, the commit measured,
whether something else was already keeping the cores busy, and how fast a core is right now."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
from typing import Any

from bench.procstat import core_load, core_times
from bench.proxy import ROOT


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as info:
        mem_kb = int(next(line for line in info if line.startswith("MemTotal")).split()[1])
    return {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "memory_gb": round(mem_kb / 1024 / 1024, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def commit() -> str:
    """The commit measured, "+ changes" when the work tree differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    return sha + (" + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def load_before_start(seconds: float = 1.0) -> dict[str, float]:
    """How busy each core is before anything starts: something else running spoils every figure."""
    before = core_times()
    time.sleep(seconds)
    return {str(core): load["busy"] for core, load in core_load(before, core_times()).items()}


def warn_if_busy(load: dict[str, float], threshold: float = 0.1) -> None:
    if busy := {core: share for core, share in load.items() if share > threshold}:
        shown = ", ".join(f"core {core} {share:.0%}" for core, share in busy.items())
        print(f"warning: the machine is already busy ({shown}); the figures will be noisy", flush=True)


def reference_work_ms(repeats: int = 3) -> float:
    """CPU time (of this thread only) of a fixed pure-Python loop, best of ``repeats``.

    On a VM the core itself speeds up and slows down (another guest on its sibling hyperthread, the
    host's clock): the same loop's CPU time varied from 98 to 171 ms within a minute on this
    project's machine, with no steal time reported. Measured next to each run on the proxy's core,
    it tells a slower proxy from a slower core.
    """
    def once() -> float:
        started = time.thread_time_ns()
        total = 0
        for i in range(300_000):
            total += i * i % 7
        return (time.thread_time_ns() - started) / 1e6

    return round(min(once() for _ in range(repeats)), 1)
