"""The load generator, its own process so it shares neither an interpreter nor a core with the proxy.

``python -m bench.loadgen`` reads one job per line (JSON) on stdin and answers each with one line of
raw measurements on stdout, so one warm process serves the whole benchmark. A job names one target
(URL, headers, body), whether to read a stream, how many requests in flight, when to stop, and which
processes' CPU time to count over the measured window (``watch``: name → pid).

In streams, every text delta the fake sends is its own send time (``--stamp-events``): a quoted
20-digit number, whatever the protocol wraps it in, so per-event latency is receive time minus that
stamp on the same machine clock. The longest gap of a stream counts from sending the request (so a
slow first event is a gap too) to its end.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from bench.procstat import core_load, core_times, cpu_seconds

STAMP = re.compile(rb'"(\d{20})"')


@dataclass(slots=True)
class Outcome:
    ok: bool = False
    status: int = 0
    error: str | None = None
    start: int = 0
    first_content: int | None = None
    end: int = 0
    events: int = 0
    last_event: int = 0
    event_latency_ns: list[int] = field(default_factory=list)
    max_gap_ns: int = 0

    def saw_event(self, now: int, stamp: int, keep_latency: bool) -> None:
        if self.first_content is None:
            self.first_content = now
        self.max_gap_ns = max(self.max_gap_ns, now - self.last_event)
        self.last_event = now
        self.events += 1
        if keep_latency:
            self.event_latency_ns.append(now - stamp)

    def finish(self) -> None:
        self.end = time.monotonic_ns()
        self.max_gap_ns = max(self.max_gap_ns, self.end - self.last_event)  # silence before the end counts too

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "status": self.status, "error": self.error,
                "ttfb_ns": (self.first_content - self.start) if self.first_content else None,
                "total_ns": self.end - self.start, "events": self.events, "max_gap_ns": self.max_gap_ns,
                "event_latency_ns": self.event_latency_ns}


async def read_stream(response: aiohttp.ClientResponse, out: Outcome, keep_latency: bool) -> None:
    async for line in response.content:
        if match := STAMP.search(line):
            out.saw_event(time.monotonic_ns(), int(match.group(1)), keep_latency)


async def one(session: aiohttp.ClientSession, job: dict[str, Any], body: bytes) -> Outcome:
    start = time.monotonic_ns()
    out = Outcome(start=start, last_event=start)
    try:
        async with session.post(job["url"], data=body, headers=job["headers"]) as response:
            out.status = response.status
            if job.get("stream"):
                await read_stream(response, out, job.get("per_event", True))
            else:
                await response.read()
                out.first_content = time.monotonic_ns()
            out.ok = response.status == 200 and (not job.get("stream") or out.events >= job.get("min_events", 1))
            if not out.ok:
                out.error = f"status {response.status}, {out.events} events"
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    out.finish()
    return out


class Window:
    """The measured window: wall time, the watched processes' CPU time, every core's load."""

    def __init__(self, watch: dict[str, int]) -> None:
        self.watch = watch
        self.started = time.monotonic()
        self.cpu_before = {name: cpu_seconds(pid) for name, pid in watch.items()}
        self.cores_before = core_times()

    def close(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        cpu = {name: round(cpu_seconds(pid) - self.cpu_before[name], 3) for name, pid in self.watch.items()}
        return {"elapsed": elapsed, "cpu_s": cpu, "core_load": core_load(self.cores_before, core_times())}


async def run(job: dict[str, Any]) -> dict[str, Any]:
    body = orjson.dumps(job["body"])
    total = job.get("requests")
    duration = job.get("duration")
    connector = aiohttp.TCPConnector(limit=0, force_close=not job.get("keepalive", True))
    timeout = aiohttp.ClientTimeout(total=job.get("timeout", 120))
    outcomes: list[Outcome] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for _ in range(int(job.get("warmup", 0))):
            await one(session, job, body)
        window = Window(job.get("watch", {}))
        deadline = window.started + duration if duration else None
        issued = 0

        async def worker() -> None:
            nonlocal issued
            while (total is None or issued < total) and (deadline is None or time.monotonic() < deadline):
                issued += 1
                outcomes.append(await one(session, job, body))

        await asyncio.gather(*(worker() for _ in range(int(job.get("concurrency", 1)))))
        measured = window.close()
    return {**measured, "cores": sorted(os.sched_getaffinity(0)), "outcomes": [o.as_json() for o in outcomes]}


def event_loop_runner() -> Callable[[Coroutine[Any, Any, dict[str, Any]]], dict[str, Any]]:
    """uvloop when installed: a lighter client leaves more of the load cores to the fake."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def serve() -> None:
    """One job per stdin line, one answer per stdout line, until stdin closes."""
    runner = event_loop_runner()
    # A buffered writer of our own: under PYTHONUNBUFFERED sys.stdout.buffer is a raw FileIO, whose
    # write() may take only part of a large answer (a signal during a pipe write) and say so only in
    # its return value; the orchestrator would then wait forever for the rest of the line.
    with open(sys.stdout.fileno(), "wb", closefd=False) as answers:
        for line in sys.stdin.buffer:
            try:
                answer = runner(run(orjson.loads(line)))
            except Exception:  # report it to the orchestrator and keep serving: it decides what to do
                answer = {"failed": traceback.format_exc()}
            answers.write(orjson.dumps(answer, option=orjson.OPT_NON_STR_KEYS) + b"\n")
            answers.flush()


if __name__ == "__main__":
    serve()
