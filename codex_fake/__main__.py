"""``python -m codex_fake``: the fake as a standalone process (benchmark, demo), driven via /__fake."""

from __future__ import annotations

import argparse
import asyncio
import signal

from codex_fake.backend import FakeCodex


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m codex_fake", description="Offline fake Codex backend")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="0 picks a free port")
    parser.add_argument("--ttfb-ms", type=float, default=0)
    parser.add_argument("--events", type=int, default=None, help="text deltas per default answer")
    parser.add_argument("--event-delay-ms", type=float, default=0)
    parser.add_argument("--stamp-events", action="store_true", help="text deltas carry their send time (benchmark)")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    fake = FakeCodex(ttfb_ms=args.ttfb_ms, events=args.events, event_delay_ms=args.event_delay_ms, stamp_events=args.stamp_events)
    base = await fake.start(args.host, args.port)
    print(f"fake codex listening on {base}", flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, done.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        await done.wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    try:
        asyncio.run(serve(parse_args(argv)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
