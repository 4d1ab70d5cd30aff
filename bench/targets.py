"""The targets the report ends with, evaluated from the measured rows.

A target holds only if it holds for every route in every repetition: the figure shown is the worst
one (with the route and repetition it came from), so a pass is not the luck of one quiet minute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Row = dict[str, Any]
Selector = Callable[[Row], bool]


@dataclass(frozen=True, slots=True)
class Verdict:
    target: str
    measured: str
    passed: bool | None  # None: the scenario did not run (e.g. --quick, --steps)

    def as_json(self) -> dict[str, Any]:
        return {"target": self.target, "measured": self.measured, "passed": self.passed}


def of_kind(kind: str) -> Selector:
    return lambda row: row["kind"] == kind


def named(scenario: str) -> Selector:
    return lambda row: row["scenario"] == scenario


def proxied(rows: list[Row], selected: Selector) -> list[Row]:
    return [r for r in rows if selected(r) and r["target"] != "direct"]


def where(row: Row) -> str:
    return f"{row['target']} rep {row['rep']}"


def added_at_most(title: str, scenario: Selector, figure: str, point: str, limit_ms: float) -> Callable[[list[Row]], Verdict]:
    """Proxied − direct of ``figure`` at ``point`` (e.g. added TTFB p50) no more than ``limit_ms``."""

    def evaluate(rows: list[Row]) -> Verdict:
        values = [(r["vs_direct"]["added"][figure][point], r) for r in proxied(rows, scenario)]
        values = [(v, r) for v, r in values if v is not None]
        if not values:
            return Verdict(title, "not run", None)
        worst, row = max(values, key=lambda pair: pair[0])
        best = min(v for v, _ in values)
        return Verdict(title, f"worst {worst:+.3f} ms ({where(row)}); range {best:+.3f} … {worst:+.3f}", worst <= limit_ms)

    return evaluate


def rps_at_least(title: str, scenario: Selector, minimum: float) -> Callable[[list[Row]], Verdict]:
    def evaluate(rows: list[Row]) -> Verdict:
        runs = proxied(rows, scenario)
        if not runs:
            return Verdict(title, "not run", None)
        worst = min(runs, key=lambda r: r["rps"] or 0)
        best = max(r["rps"] or 0 for r in runs)
        return Verdict(title, f"worst {worst['rps']:.0f} req/s ({where(worst)}); range {worst['rps']:.0f} … {best:.0f}",
                       (worst["rps"] or 0) >= minimum)

    return evaluate


def streams_never_wait(title: str, streams: int, max_rss_mb: float | None = None) -> Callable[[list[Row]], Verdict]:
    """Every stream completed, none went more than a second without an event (the first included),
    and (if given) the proxy's peak RSS stayed within ``max_rss_mb``."""

    def evaluate(rows: list[Row]) -> Verdict:
        runs = proxied(rows, named(f"{streams} concurrent streams"))
        if not runs:
            return Verdict(title, "not run", None)
        parts = ["; ".join(f"{where(r)}: {r['ok']}/{r['requests']} completed, {r['stalls']} stalled, "
                           f"longest gap {r['max_gap_ms']['max']:.0f} ms" for r in runs)]
        passed = all(r["ok"] == r["requests"] == streams and r["stalls"] == 0 for r in runs)
        if max_rss_mb is not None:
            peak = max(r["proxy_peak_rss_mb"] for r in runs)
            parts.append(f"peak RSS {peak:.0f} MB")
            passed = passed and peak <= max_rss_mb
        return Verdict(title, "; ".join(parts), passed)

    return evaluate


def websocket_no_slower(title: str, ttfb_allowance_ms: float, rps_ratio: float) -> Callable[[list[Row]], Verdict]:
    """Each ``<route>/ws`` against ``<route>`` in the same repetition: its added TTFB p50 no more
    than ``ttfb_allowance_ms`` above, its non-streamed req/s at 16 in flight at least ``rps_ratio``
    of it (the allowances are the run-to-run noise of a shared machine, not a budget)."""

    def evaluate(rows: list[Row]) -> Verdict:
        def by(kind: Selector) -> dict[tuple[str, int], Row]:
            return {(r["target"], r["rep"]): r for r in proxied(rows, kind)}

        ttfb, rps = by(of_kind("ttfb")), by(named("non-stream c=16"))
        ttfb_diffs = [(ws["vs_direct"]["added"]["ttfb_ms"]["p50"] - sse["vs_direct"]["added"]["ttfb_ms"]["p50"], ws)
                      for (name, rep), ws in ttfb.items() if name.endswith("/ws") and (sse := ttfb.get((name[:-3], rep)))]
        ratios = [(ws["rps"] / sse["rps"], ws) for (name, rep), ws in rps.items()
                  if name.endswith("/ws") and (sse := rps.get((name[:-3], rep))) and sse["rps"]]
        if not ttfb_diffs and not ratios:
            return Verdict(title, "not run", None)
        parts = [f"added TTFB p50 ws − sse {', '.join(f'{d:+.3f} ms ({where(r)})' for d, r in ttfb_diffs)}"] if ttfb_diffs else []
        parts += [f"req/s at 16 ws / sse {', '.join(f'{q:.2f} ({where(r)})' for q, r in ratios)}"] if ratios else []
        passed = all(d <= ttfb_allowance_ms for d, _ in ttfb_diffs) and all(q >= rps_ratio for q, _ in ratios)
        return Verdict(title, "; ".join(parts), passed)

    return evaluate


TARGETS = [
    added_at_most("added TTFB p50 ≤ +2.0 ms", of_kind("ttfb"), "ttfb_ms", "p50", 2.0),
    added_at_most("added TTFB p99 ≤ +5 ms", of_kind("ttfb"), "ttfb_ms", "p99", 5.0),
    rps_at_least("≥ 600 non-streamed req/s at 16 in flight", named("non-stream c=16"), 600),
    added_at_most("added inter-event p99 ≤ +0.3 ms", of_kind("inter_event"), "event_ms", "p99", 0.3),
    streams_never_wait("500 concurrent streams, none waits > 1 s for an event", 500),
    streams_never_wait("1,000 concurrent streams, none waits > 1 s, peak RSS ≤ 250 MB", 1000, max_rss_mb=250),
    websocket_no_slower("WebSocket turns no slower than SSE (added TTFB p50 within +0.2 ms, req/s at 16 ≥ 0.95×)", 0.2, 0.95),
]


def evaluate(rows: list[Row]) -> list[Verdict]:
    return [target(rows) for target in TARGETS]
