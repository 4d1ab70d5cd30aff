"""Which CPU cores each benchmark process may run on.

The proxy gets one core to itself and everything else (the fake backend, the load generator, this
orchestrator) shares the others. Then a figure like "requests per second" means "per proxy core":
it no longer depends on how the scheduler happened to spread three busy processes over the machine,
and the load side cannot steal the proxy's core in one run and leave it alone in the next.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class CoreLayoutError(ValueError):
    """The requested pinning cannot be done on this machine."""


@dataclass(frozen=True, slots=True)
class CoreLayout:
    proxy: int
    load: tuple[int, ...]

    def describe(self) -> str:
        return f"proxy on core {self.proxy}; fake backend and load generator on {format_cores(self.load)}"


def available_cores() -> list[int]:
    """The cores this process may use (a container or taskset may allow fewer than the machine has)."""
    return sorted(os.sched_getaffinity(0))


def format_cores(cores: Collection[int]) -> str:
    ordered = sorted(cores)
    return ("core " if len(ordered) == 1 else "cores ") + ",".join(map(str, ordered))


def parse_cores(text: str) -> tuple[int, ...]:
    """``"1,2"`` or ``"1-3"`` (and mixes: ``"1,4-6"``) → the core numbers."""
    cores: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = part.partition("-")
        cores.extend(range(int(first), int(last or first) + 1))
    return tuple(dict.fromkeys(cores))


def plan_cores(proxy_core: int, load_cores: tuple[int, ...] | None, available: list[int]) -> CoreLayout:
    """The layout asked for, checked against ``available``; ``load_cores`` None = every other core."""
    if len(available) < 2:
        raise CoreLayoutError(
            f"the benchmark needs at least 2 CPU cores (one for the proxy, the rest for the fake backend and the load "
            f"generator); this process may use only {format_cores(available)}. Run it on a machine or container with more."
        )
    if proxy_core not in available:
        raise CoreLayoutError(f"--proxy-core {proxy_core} is not available here ({format_cores(available)})")
    load = load_cores if load_cores is not None else tuple(c for c in available if c != proxy_core)
    if not load:
        raise CoreLayoutError("--load-cores is empty")
    if unknown := [c for c in load if c not in available]:
        raise CoreLayoutError(f"--load-cores {format_cores(unknown)} not available here ({format_cores(available)})")
    if proxy_core in load:
        raise CoreLayoutError(f"core {proxy_core} is the proxy's; the load side must not share it")
    return CoreLayout(proxy_core, tuple(load))


def pinned_to(cores: Collection[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` for Popen: the child is pinned before it execs, so every thread it ever starts
    inherits the pinning (setting it after the start would miss threads already running)."""
    if cores is None:
        return None
    chosen = set(cores)

    def pin() -> None:
        os.sched_setaffinity(0, chosen)

    return pin


@contextmanager
def running_on(cores: Collection[int]) -> Iterator[None]:
    """This process (its calling thread and threads started meanwhile) on ``cores``, then back."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cores))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def cores_in_use(pid: int) -> list[int]:
    """Every core any thread of ``pid`` may run on, read back from the kernel (not what we asked for)."""
    allowed: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            allowed |= os.sched_getaffinity(int(task.name))
        except OSError:  # the thread ended meanwhile
            continue
    return sorted(allowed)
