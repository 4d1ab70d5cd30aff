"""The load generator, run as its own process so it does not share an interpreter with the proxy.

``python -m bench.loadgen '<job json>'`` prints one JSON object of raw measurements. A job names
one target (URL, headers, body), whether to read a stream, how many requests in flight, and when
to stop. In streams, every text delta the fake sends is its own send time (``--stamp-events``): a
quoted 20-digit number, whatever the protocol wraps it in, so per-event latency is receive time
minus that stamp on the same machine clock.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

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
    event_latency_ns: list[int] = field(default_factory=list)
    max_gap_ns: int = 0


async def one(session: aiohttp.ClientSession, job: dict[str, Any], body: bytes) -> Outcome:
    out = Outcome(start=time.monotonic_ns())
    keep_latencies = job.get("per_event", True)
    try:
        async with session.post(job["url"], data=body, headers=job["headers"]) as response:
            out.status = response.status
            last = None
            if job.get("stream"):
                async for line in response.content:
                    match = STAMP.search(line)
                    if match is None:
                        continue
                    now = time.monotonic_ns()
                    if out.first_content is None:
                        out.first_content = now
                    if last is not None and now - last > out.max_gap_ns:
                        out.max_gap_ns = now - last
                    last = now
                    out.events += 1
                    if keep_latencies:
                        out.event_latency_ns.append(now - int(match.group(1)))
            else:
                await response.read()
                out.first_content = time.monotonic_ns()
            out.ok = response.status == 200 and (not job.get("stream") or out.events >= job.get("min_events", 1))
            if not out.ok and out.error is None:
                out.error = f"status {response.status}, {out.events} events"
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    out.end = time.monotonic_ns()
    return out


async def run(job: dict[str, Any]) -> dict[str, Any]:
    body = orjson.dumps(job["body"])
    concurrency = int(job.get("concurrency", 1))
    total = job.get("requests")
    duration = job.get("duration")
    connector = aiohttp.TCPConnector(limit=0, force_close=not job.get("keepalive", True))
    timeout = aiohttp.ClientTimeout(total=job.get("timeout", 120))
    outcomes: list[Outcome] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for _ in range(int(job.get("warmup", 0))):
            await one(session, job, body)
        started = time.monotonic()
        deadline = started + duration if duration else None
        issued = 0

        async def worker() -> None:
            nonlocal issued
            while True:
                if total is not None and issued >= total:
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    return
                issued += 1
                outcomes.append(await one(session, job, body))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return {
        "elapsed": elapsed,
        "outcomes": [
            {"ok": o.ok, "status": o.status, "error": o.error, "ttfb_ns": (o.first_content - o.start) if o.first_content else None,
             "total_ns": o.end - o.start, "events": o.events, "max_gap_ns": o.max_gap_ns, "event_latency_ns": o.event_latency_ns}
            for o in outcomes
        ],
    }


def main() -> None:
    job = orjson.loads(sys.argv[1])
    try:
        import uvloop  # a lighter client leaves more of the shared CPU to what is measured

        uvloop.install()
    except ImportError:
        pass
    sys.stdout.buffer.write(orjson.dumps(asyncio.run(run(job))))


if __name__ == "__main__":
    main()
