"""``python -m bench.transport``: what the upstream transport itself costs, before and after.

Two implementations of the same interface: ``old`` (bench/session_baseline.py, one curl_cffi
``AsyncSession``, as the proxy had it) and ``new`` (core/upstream/transport.py on
core/upstream/driver.py); and, for the per-event cost only, ``floor``: a bare asyncio Protocol
reading the same stream without any HTTP handling, what asyncio alone costs per event. Each runs
in a worker process of its own against the fake backend (``python -m codex_fake``, another
process).

Steps (``--steps``):

- ``cpu``: instructions, counted by callgrind in the worker only while it runs a fixed number of
  calls (``valgrind --tool=callgrind --instr-atstart=no``, then ``callgrind_control -i on/off``
  around them), divided by that number; the median of ``--repeat`` runs. Wall-clock time on a
  shared VM varies by ±30 % from run to run; instruction counts far less, but they still depend
  on how the fake's writes happen to arrive (one read or several), so counts from different
  sessions can differ by more than the spread within one. Workloads:
  ``request`` — ``transport.request`` GET of a small JSON (``/wham/usage``);
  ``turn`` — ``open_stream`` + read to the end + ``aclose`` of an answer of 5 text deltas
  (what a non-streamed client request costs the transport);
  ``events`` — long paced streams; per event = (instructions of streams of ``E2`` events −
  the same with ``E1`` events) / the events in between, so opening a stream is not counted.
- ``memory``: N streams opened at once (30 events, 100 ms apart: 3 s each, read to the end);
  resident memory of the worker before and at its peak (per stream = the difference / N), and
  how long each stream waited for its first chunk.

Results are printed as JSON lines and, with ``--out``, saved to a file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "bench-account"
CODEX_BODY = (b'{"model":"gpt-5.4","instructions":"","stream":true,"store":false,'
              b'"input":[{"role":"user","content":[{"type":"input_text","text":"Benchmark prompt."}]}]}')
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- the worker (one implementation, one workload) ------------------------------------------------


def _headers(token: str) -> dict[str, str]:
    """The size and shape of what the pipeline sends (core/codex/headers.py)."""
    conversation = "0b7f3c1e-5d2a-4c8e-9f61-2a4b6c8d0e1f"
    return {
        "Authorization": f"Bearer {token}", "originator": "codex_cli_rs",
        "User-Agent": "codex_cli_rs/0.146.0 (darwin arm64)", "Accept-Language": "en-US,en;q=0.9",
        "ChatGPT-Account-Id": ACCOUNT, "Content-Type": "application/json", "Accept": "text/event-stream",
        "OpenAI-Beta": "responses_websockets=2026-02-06", "x-client-request-id": conversation,
        "session_id": conversation, "x-codex-window-id": conversation + ":0",
        "x-codex-installation-id": "5f0c2a4e-8b1d-4e3f-a6c7-9d8e7f6a5b4c", "version": "0.146.0",
    }


class _FloorStream:
    """A bare asyncio Protocol on a fresh connection: the bytes as they come, no HTTP parsing.
    Not a transport; the ``floor`` implementation measures what asyncio alone costs per event."""

    def __init__(self, protocol: _FloorProtocol, transport: asyncio.Transport) -> None:
        self._protocol, self._transport = protocol, transport

    async def chunks(self) -> Any:
        protocol = self._protocol
        while True:
            if protocol.buffer:
                data = bytes(protocol.buffer)
                protocol.buffer.clear()
                yield data
                if data.endswith(b"0\r\n\r\n"):  # the last chunk of the chunked body
                    return
            elif protocol.eof:
                return
            else:
                protocol.waiter = asyncio.get_running_loop().create_future()
                await protocol.waiter

    async def aclose(self) -> None:
        self._transport.close()


class _FloorProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.eof = False

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.data_received(b"")


class _FloorTransport:
    async def open_stream(self, url: str, headers: dict[str, str], body: bytes) -> _FloorStream:
        host, _, rest = url[7:].partition("/")
        name, _, port = host.partition(":")
        head = f"POST /{rest} HTTP/1.1\r\nHost: {host}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        transport, protocol = await asyncio.get_running_loop().create_connection(_FloorProtocol, name, int(port))
        transport.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        return _FloorStream(protocol, transport)  # type: ignore[arg-type]

    async def close(self) -> None:
        pass


def _transport(impl: str, data_dir: str) -> Any:
    if impl == "floor":
        return _FloorTransport()
    from core.config import ConfigStore

    cfg = ConfigStore(Path(data_dir), environ={}).current  # the shipped defaults (chrome, 15 s / 600 s)
    if impl == "old":
        from bench.session_baseline import SessionTransport

        return SessionTransport(cfg, max_clients=512)
    from core.upstream.transport import UpstreamTransport

    return UpstreamTransport(cfg)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


async def _read_line(loop: asyncio.AbstractEventLoop) -> str:
    """One line from stdin without a thread (the loop watches the pipe)."""
    fd = sys.stdin.fileno()
    ready = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(fd)
    return os.read(fd, 4096).decode().strip()


async def _worker(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory() as data_dir:
        transport = _transport(args.impl, data_dir)
        headers = _headers(args.token)
        stream_url = args.fake + "/backend-api/codex/responses"
        json_url = args.fake + "/backend-api/wham/usage"
        chunks = 0

        async def turn() -> None:
            nonlocal chunks
            stream = await transport.open_stream(stream_url, headers, CODEX_BODY)
            try:
                async for _ in stream.chunks():
                    chunks += 1
            finally:
                await stream.aclose()

        async def request() -> None:
            reply = await transport.request("GET", json_url, headers, timeout=30.0)
            assert reply.status == 200 and reply.body

        async def idle() -> None:
            await asyncio.sleep(1)

        one = {"request": request, "turn": turn, "idle": idle}.get(args.mode, turn)

        async def run(count: int, concurrency: int) -> None:
            async def lane(n: int) -> None:
                for _ in range(n):
                    await one()

            share, extra = divmod(count, concurrency)
            await asyncio.gather(*(lane(share + (i < extra)) for i in range(concurrency)))

        if args.mode == "hold":
            await _hold(transport, stream_url, headers, args.count)
        else:
            await run(args.warmup, args.concurrency)
            print("ready", flush=True)
            await _read_line(loop)
            chunks = 0
            started = time.perf_counter()
            await run(args.count, args.concurrency)
            elapsed = time.perf_counter() - started
            print(json.dumps({"calls": args.count, "chunks": chunks, "seconds": round(elapsed, 3)}), flush=True)
            await _read_line(loop)
        await transport.close()


async def _hold(transport: Any, url: str, headers: dict[str, str], count: int) -> None:
    """Open ``count`` streams at once, read each to its end; memory and first-chunk waits."""
    for _ in range(3):  # warm: imports, the first handle and connection
        stream = await transport.open_stream(url, headers, CODEX_BODY)
        async for _ in stream.chunks():
            pass
        await stream.aclose()
    before = _rss()
    peak = before
    waits: list[float] = []
    errors = 0

    async def one() -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            stream = await transport.open_stream(url, headers, CODEX_BODY)
            try:
                first = True
                async for _ in stream.chunks():
                    if first:
                        waits.append(time.perf_counter() - started)
                        first = False
            finally:
                await stream.aclose()
        except Exception:
            errors += 1

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, _rss())
            await asyncio.sleep(0.05)

    sampler = asyncio.get_running_loop().create_task(sample())
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    elapsed = time.perf_counter() - started
    sampler.cancel()
    waits.sort()
    stats = transport.driver.stats() if hasattr(transport, "driver") else None
    print(json.dumps({
        "streams": count, "errors": errors, "seconds": round(elapsed, 2),
        "rss_before_mb": round(before / 2**20, 1), "rss_peak_mb": round(peak / 2**20, 1),
        "kb_per_stream": round((peak - before) / count / 1024, 1),
        "first_chunk_p50_ms": round(waits[len(waits) // 2] * 1000, 1) if waits else None,
        "first_chunk_p95_ms": round(waits[int(len(waits) * 0.95)] * 1000, 1) if waits else None,
        "first_chunk_max_ms": round(waits[-1] * 1000, 1) if waits else None,
        "pool_after": stats,
    }), flush=True)


# -- the orchestrator --------------------------------------------------------------------------------


class Fake:
    """``python -m codex_fake`` in its own process, configured over its control API."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "codex_fake", "--port", "0"], cwd=ROOT,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        self.base = self.process.stdout.readline().strip().rsplit(" ", 1)[-1]
        from codex_fake import mint_access_token

        self.token = mint_access_token(account_id=ACCOUNT, expires_in=24 * 3600)

    def configure(self, **knobs: Any) -> None:
        body = json.dumps({"record_requests": False, "events": 5, "event_delay_ms": 0, "ttfb_ms": 0, **knobs}).encode()
        request = urllib.request.Request(self.base + "/__fake/config", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _worker_command(impl: str, mode: str, fake: Fake, count: int, concurrency: int = 1, warmup: int = 0) -> list[str]:
    return [sys.executable, "-m", "bench.transport", "--worker", "--impl", impl, "--mode", mode, "--fake", fake.base,
            "--token", fake.token, "--count", str(count), "--concurrency", str(concurrency), "--warmup", str(warmup)]


def _counted(command: list[str]) -> tuple[int, dict[str, Any]]:
    """Run a worker under callgrind; instructions only between its "ready" and its result."""
    out_dir = tempfile.mkdtemp(prefix="bench-callgrind-")
    try:
        process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_dir}/cg.%p", *command],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert process.stdin is not None and process.stdout is not None
        if (line := process.stdout.readline().strip()) != "ready":
            raise RuntimeError(f"worker did not start: {line!r} (exit {process.wait()})")
        control = ["callgrind_control", "-i"]
        subprocess.run([*control, "on", str(process.pid)], check=True, capture_output=True, timeout=120)
        process.stdin.write("go\n")
        process.stdin.flush()
        result = json.loads(process.stdout.readline())
        subprocess.run([*control, "off", str(process.pid)], check=True, capture_output=True, timeout=120)
        process.stdin.write("quit\n")
        process.stdin.flush()
        process.wait(600)
        total = 0
        for path in glob.glob(f"{out_dir}/cg.*"):
            counts = {}
            with open(path) as f:
                for line in f:
                    if line.startswith(("summary:", "totals:")):
                        counts[line.split(":")[0]] = int(line.split()[1])
            # With --instr-atstart=no the header's summary can read 0; totals has the count.
            total += counts.get("totals") or counts.get("summary", 0)
        return total, result
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def cpu_step(fake: Fake, impls: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each measurement ``args.repeat`` times; the median is reported, with the spread."""
    rows = []

    def median(runs: list[float]) -> dict[str, Any]:
        ordered = sorted(runs)
        return {"median": round(ordered[len(ordered) // 2]), "min": round(ordered[0]), "max": round(ordered[-1])}

    for impl in impls:
        for concurrency in (1, 16) if impl != "floor" else ():  # the floor only streams
            fake.configure(events=5)
            for mode in ("request", "turn"):
                runs, results = [], []
                for _ in range(args.repeat):
                    instructions, result = _counted(_worker_command(impl, mode, fake, args.calls, concurrency, warmup=100))
                    runs.append(instructions / args.calls)
                    results.append(result)
                rows.append({"step": "cpu", "impl": impl, "workload": mode, "concurrency": concurrency,
                             "calls": args.calls, "instructions_per_call": median(runs),
                             "chunks_per_call": round(sum(r["chunks"] for r in results) / len(results) / args.calls, 2)})
                print(json.dumps(rows[-1]), flush=True)
        # Per event: two runs of paced streams differing only in length.
        streams, short, long, delay = 2, 20, 220, args.event_delay_ms
        runs, chunks = [], []
        for _ in range(args.repeat):
            counts = {}
            for events in (short, long):
                fake.configure(events=events, event_delay_ms=delay)
                counts[events] = _counted(_worker_command(impl, "turn", fake, streams, streams, warmup=2))
            (i1, r1), (i2, r2) = counts[short], counts[long]
            runs.append((i2 - i1) / (streams * (long - short)))
            chunks.append(r2["chunks"] - r1["chunks"])
        rows.append({"step": "cpu", "impl": impl, "workload": "events", "streams": streams, "event_delay_ms": delay,
                     "events_between": streams * (long - short), "chunks_between": chunks,
                     "instructions_per_event": median(runs)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def memory_step(fake: Fake, impls: list[str], sizes: list[int]) -> list[dict[str, Any]]:
    rows = []
    fake.configure(events=30, event_delay_ms=100)
    for impl in impls:
        for size in sizes if impl != "floor" else ():
            command = _worker_command(impl, "hold", fake, size)
            output = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True).stdout
            rows.append({"step": "memory", "impl": impl, **json.loads(output.strip().splitlines()[-1])})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.transport", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="cpu,memory")
    parser.add_argument("--impl", default="old,new,floor",
                        help="old, new, floor (comma-separated); floor: a bare asyncio protocol, events only")
    parser.add_argument("--calls", type=int, default=1000, help="counted calls per cpu workload")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cpu measurement (the median is reported)")
    parser.add_argument("--event-delay-ms", type=float, default=10)
    parser.add_argument("--streams", default="100,1000", help="stream counts for the memory step")
    parser.add_argument("--out", help="also write the results (JSON) here")
    # worker mode (started by the orchestrator)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--fake", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        asyncio.run(_worker(args))
        return
    steps = args.steps.split(",")
    impls = args.impl.split(",")
    if "cpu" in steps and shutil.which("valgrind") is None:
        parser.error("the cpu step needs valgrind (callgrind) on PATH")
    fake = Fake()
    rows: list[dict[str, Any]] = []
    try:
        if "cpu" in steps:
            rows += cpu_step(fake, impls, args)
        if "memory" in steps:
            rows += memory_step(fake, impls, [int(n) for n in args.streams.split(",")])
    finally:
        fake.stop()
    if args.out:
        with contextlib.suppress(OSError):
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
