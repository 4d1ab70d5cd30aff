"""``python -m bench.websocket``: the WebSocket client alone, ours against curl_cffi's, and a turn
over it against the same turn over HTTP SSE.

Implementations (``--impls``), each in a worker process of its own against the fake backend
(``python -m codex_fake``, another process):

- ``ours``: core/upstream/websocket.py — the handshake runs on the event loop in a multi handle of
  its own; frames are read with ``curl_ws_recv`` when the loop says the socket is readable;
- ``curl_cffi``: curl_cffi's ``AsyncSession.ws_connect`` — the handshake runs ``curl.perform`` in a
  thread of the default executor, then ``AsyncWebSocket`` reads through its own queue and tasks;
- ``sse``: the same turns over HTTP (core/upstream/transport.py ``open_stream``), for comparison.

Workloads: ``handshake`` (open and close, one after another), ``turn`` (one socket, or one kept-
alive connection for ``sse``; a turn of 5 text deltas sent and read to the end, one after another)
and ``events`` (turns of ``--events`` deltas: CPU per event). Each reports wall-clock p50/p90 and the
worker's CPU time (all its threads) per unit. Wall time on a shared machine is noisy: compare
within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from typing import Any

import orjson

from bench.transport import ACCOUNT, CODEX_BODY, ROOT, Fake, _headers

FRAME = b'{"type":"response.create",' + CODEX_BODY[1:]
TERMINAL = (b'"response.completed"', b'"response.failed"', b'"error"')


async def _ours(url: str, headers: dict[str, str]) -> Any:
    from core.upstream.handles import HandlePool, Limits, Profile
    from core.upstream.transfer import body_writer, callback_failed
    from core.upstream.websocket import UpstreamSocket
    from curl_cffi.curl import DEFAULT_CACERT

    pool = HandlePool(DEFAULT_CACERT.encode(), 8, body_writer, callback_failed)
    limits = Limits(10, 20)

    class Client:
        async def open(self) -> Any:
            return await UpstreamSocket.open(pool, url, headers.items(), limits, Profile())

        async def turn(self, sock: Any) -> int:
            await sock.send(FRAME)
            count = 0
            while True:
                message = sock.next_message()
                if message is None:
                    await sock.wait()
                    continue
                count += 1
                if any(t in message[:40] for t in TERMINAL):
                    return count

        async def close(self, sock: Any) -> None:
            sock.close()

    return Client()


async def _curl_cffi(url: str, headers: dict[str, str]) -> Any:
    from curl_cffi import CurlWsFlag
    from curl_cffi.requests import AsyncSession

    session = AsyncSession(impersonate="chrome")

    class Client:
        async def open(self) -> Any:
            return await session.ws_connect(url, headers=headers)

        async def turn(self, ws: Any) -> int:
            await ws.send(FRAME, CurlWsFlag.TEXT)
            count = 0
            while True:
                message, _ = await ws.recv()
                count += 1
                if any(t in message[:40] for t in TERMINAL):
                    return count

        async def close(self, ws: Any) -> None:
            await ws.close()

    return Client()


async def _sse(url: str, headers: dict[str, str], data_dir: str) -> Any:
    from bench.transport import _transport

    transport = _transport("new", data_dir)
    http_url = url.replace("ws://", "http://", 1)
    sse_headers = {**headers, "Content-Type": "application/json", "Accept": "text/event-stream"}

    class Client:
        async def open(self) -> Any:
            return None  # connections are pooled by the driver: the first turn opens one

        async def turn(self, _: Any) -> int:
            stream = await transport.open_stream(http_url, sse_headers, CODEX_BODY)
            count = 0
            async for chunk in stream.chunks():
                count += chunk.count(b"\n\n")
            await stream.aclose()
            return count

        async def close(self, _: Any) -> None:
            return None

    return Client()


async def _worker(args: argparse.Namespace) -> None:
    import tempfile

    url = args.fake.replace("http://", "ws://", 1) + "/backend-api/codex/responses"
    headers = {k: v for k, v in _headers(args.token).items() if k not in ("Content-Type", "Accept")}
    with tempfile.TemporaryDirectory() as data_dir:
        client = await (_sse(url, headers, data_dir) if args.impl == "sse" else
                        _ours(url, headers) if args.impl == "ours" else _curl_cffi(url, headers))
        times: list[float] = []
        units = 0
        if args.mode == "handshake":
            for _ in range(args.warmup):
                await client.close(await client.open())
            cpu = time.process_time()
            for _ in range(args.count):
                start = time.perf_counter()
                await client.close(await client.open())
                times.append(time.perf_counter() - start)
            units = args.count
        else:
            sock = await client.open()
            for _ in range(args.warmup):
                await client.turn(sock)
            cpu = time.process_time()
            for _ in range(args.count):
                start = time.perf_counter()
                events = await client.turn(sock)
                times.append(time.perf_counter() - start)
                units += events if args.mode == "events" else 1
            await client.close(sock)
        cpu = time.process_time() - cpu
    times.sort()
    print(json.dumps({"impl": args.impl, "mode": args.mode, "units": units,
                      "wall_ms_p50": round(statistics.median(times) * 1000, 3),
                      "wall_ms_p90": round(times[int(len(times) * 0.9)] * 1000, 3),
                      "cpu_us_per_unit": round(cpu * 1e6 / max(1, units), 1)}), flush=True)


def run(fake: Fake, impl: str, mode: str, count: int, warmup: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.websocket", "--worker", "--impl", impl, "--mode", mode, "--fake", fake.base,
               "--token", fake.token, "--count", str(count), "--warmup", str(warmup)]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True).stdout
    return orjson.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.websocket", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--impl", default="ours", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="turn", help=argparse.SUPPRESS)
    p.add_argument("--fake", help=argparse.SUPPRESS)
    p.add_argument("--token", help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--events", type=int, default=2000, help="text deltas per turn in the events workload")
    p.add_argument("--impls", default="ours,curl_cffi,sse", type=lambda s: s.split(","))
    p.add_argument("--modes", default="handshake,turn,events", type=lambda s: s.split(","))
    args = p.parse_args(argv)
    if args.worker:
        asyncio.run(_worker(args))
        return
    fake = Fake()
    try:
        for mode in args.modes:
            fake.configure(events=args.events if mode == "events" else 5)
            count = max(5, args.count // 20) if mode == "events" else args.count
            for impl in args.impls:
                if mode == "handshake" and impl == "sse":
                    continue
                print(json.dumps(run(fake, impl, mode, count, max(2, args.warmup // 10) if mode == "events" else args.warmup)),
                      flush=True)
    finally:
        fake.stop()


if __name__ == "__main__":
    main()

__all__ = ["ACCOUNT", "main"]
