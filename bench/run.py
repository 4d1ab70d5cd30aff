"""``python -m bench`` (``make bench``): what the proxy costs on one core, side by side with calling
the fake Codex backend directly.

It pins the proxy (``mitmdump -s addons/codex.py``, as users run it) to one core and the fake backend
(``python -m codex_fake --stamp-events``) and the load generator (``bench.loadgen``) to the others,
then runs every scenario against the fake directly and through each protocol route of the proxy,
interleaved. Results go to ``bench-results/<time>.json`` and ``.md``; docs/benchmark.md explains them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench.cores import CoreLayout, CoreLayoutError, available_cores, parse_cores, plan_cores, running_on
from bench.environment import commit, load_before_start, machine, warn_if_busy
from bench.proxy import ROOT
from bench.report import markdown
from bench.scenarios import STEPS, planned
from bench.session import Session
from bench.targets import evaluate


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in seconds")
    p.add_argument("--proxy-core", type=int, default=0, help="the one core the proxy runs on (default 0)")
    p.add_argument("--load-cores", type=parse_cores, default=None,
                   help="cores for the fake backend and the load generator, e.g. 1 or 1-3 (default: every other core)")
    p.add_argument("--repeat", type=int, default=2, help="direct/proxied pairs per route and scenario (default 2)")
    p.add_argument("--protocols", default="openai,responses,anthropic,gemini", type=lambda s: s.split(","))
    p.add_argument("--websocket-routes", default="openai", type=lambda s: [x for x in s.split(",") if x],
                   help="protocols also measured through a proxy whose turns go over the backend's WebSocket "
                        "(route <name>/ws; the others use HTTP SSE); empty for none")
    p.add_argument("--steps", default=",".join(STEPS), type=lambda s: s.split(","), help=f"any of {', '.join(STEPS)}")
    p.add_argument("--ttfb-requests", type=int, default=300)
    p.add_argument("--long-events", type=int, default=500)
    p.add_argument("--long-streams", type=int, default=5)
    p.add_argument("--event-delay-ms", type=float, default=2)
    p.add_argument("--concurrency", default=[1, 16, 64], type=int_list)
    p.add_argument("--duration", type=float, default=3, help="seconds per non-streamed run")
    p.add_argument("--streams", default=[100, 500, 1000], type=int_list)
    p.add_argument("--many-events", type=int, default=30)
    p.add_argument("--many-delay-ms", type=float, default=100)
    p.add_argument("--all-routes-streams", action="store_true", help="run the concurrent-streams step for every route")
    p.add_argument("--quiet", action="store_true", help="run mitmdump with -q (no per-flow output)")
    p.add_argument("--out", default=str(ROOT / "bench-results"))
    return p


def make_quick(args: argparse.Namespace) -> None:
    """Every scenario and both repetitions, at sizes that take seconds: proves it all runs, measures nothing."""
    args.ttfb_requests, args.long_events, args.long_streams, args.duration = 20, 50, 1, 0.3
    args.concurrency, args.streams, args.many_events, args.many_delay_ms = [1, 16], [10], 5, 20


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, CoreLayout]:
    p = parser()
    args = p.parse_args(argv)
    if unknown := [s for s in args.steps if s not in STEPS]:
        p.error(f"unknown step(s) {', '.join(unknown)}; known: {', '.join(STEPS)}")
    if args.quick:
        make_quick(args)
    try:
        layout = plan_cores(args.proxy_core, args.load_cores, available_cores())
    except CoreLayoutError as exc:
        p.error(str(exc))
    return args, layout


# --- running ----------------------------------------------------------------------------------------

def measure_all(args: argparse.Namespace, layout: CoreLayout) -> dict[str, Any]:
    idle = load_before_start()
    warn_if_busy(idle)
    session = Session(args, layout)
    try:
        print(f"{layout.describe()}; routes: {', '.join(r.name for r in session.routes)}", flush=True)
        for scenario in planned(args):
            session.run(scenario)
        described = {**session.describe(), "load_before_start": idle}
    finally:
        session.close()
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "commit": commit(), "machine": machine(), "setup": described,
            "config": vars(args), "runs": session.runs,
            "targets": [v.as_json() for v in evaluate(session.runs)]}


def write(results: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stem = out / time.strftime("%Y%m%d-%H%M%S")
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2))
    stem.with_suffix(".md").write_text(markdown(results))
    return stem


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args, layout = parse_args(argv)
    # This process samples memory and talks to the others: it belongs with the load, off the proxy's core.
    with running_on(layout.load):
        results = measure_all(args, layout)
    stem = write(results, Path(args.out))
    print("\n" + markdown(results))
    print(f"written: {stem}.json and .md")
    return results
