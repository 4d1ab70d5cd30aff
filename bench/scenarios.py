"""What the benchmark measures: each scenario is a fake-backend setting plus one load-generator job,
run against the fake directly and through the proxy (see bench/session.py for the order)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str  # as the report titles it, e.g. "non-stream c=16"
    kind: str  # "ttfb", "inter_event", "throughput" or "streams": which table it goes to
    fake: dict[str, Any]  # /__fake/config knobs for the whole scenario
    job: dict[str, Any]  # the load generator's job (bench/loadgen.py), apart from the target
    all_routes: bool = True  # False: only the first route (a step too slow to repeat for each)
    size: dict[str, Any] = field(default_factory=dict)  # what the report says about its shape


def ttfb(args: argparse.Namespace) -> list[Scenario]:
    """Streaming, one request in flight: time from sending the request to the first content token."""
    n = args.ttfb_requests
    return [Scenario("ttfb (1 in flight)", "ttfb", {"events": 20},
                     {"stream": True, "requests": n, "warmup": 20, "per_event": False}, size={"requests": n})]


def inter_event(args: argparse.Namespace) -> list[Scenario]:
    """Long streams: per-event latency, receive time − the fake's send stamp."""
    events, delay, streams = args.long_events, args.event_delay_ms, args.long_streams
    return [Scenario(f"inter-event ({events} ev)", "inter_event", {"events": events, "event_delay_ms": delay},
                     {"stream": True, "requests": streams, "min_events": events},
                     size={"streams": streams, "events": events, "delay_ms": delay})]


def throughput(args: argparse.Namespace) -> list[Scenario]:
    """Non-streamed requests per second, N in flight (the proxy collects the upstream stream; the
    direct run reads the fake's stream whole, which is what the proxy does upstream)."""
    return [Scenario(f"non-stream c={c}", "throughput", {"events": 5},
                     {"concurrency": c, "duration": args.duration, "warmup": 10, "per_event": False},
                     size={"in_flight": c, "duration_s": args.duration})
            for c in args.concurrency]


def many_streams(args: argparse.Namespace) -> list[Scenario]:
    """N long streams opened at once: completed, errors, stalls, longest gaps, the proxy's peak RSS."""
    events, delay = args.many_events, args.many_delay_ms
    return [Scenario(f"{n} concurrent streams", "streams", {"events": events, "event_delay_ms": delay},
                     {"stream": True, "concurrency": n, "requests": n, "min_events": events, "per_event": False, "timeout": 300},
                     all_routes=args.all_routes_streams, size={"streams": n, "events": events, "delay_ms": delay})
            for n in args.streams]


STEPS = {"ttfb": ttfb, "inter_event": inter_event, "throughput": throughput, "many_streams": many_streams}


def planned(args: argparse.Namespace) -> list[Scenario]:
    """Every scenario of the steps asked for, in the order given."""
    return [scenario for step in args.steps for scenario in STEPS[step](args)]
