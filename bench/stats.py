"""From the load generator's raw outcomes to the figures a report shows, and proxied vs direct."""

from __future__ import annotations

from typing import Any

STALL_NS = 1_000_000_000  # a stream that goes longer than this without an event has stalled


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def ms(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


def at_point(values: list[float], point: str) -> float | None:
    """``point`` is "max" or a percentile ("p50", "p99.9")."""
    if point == "max":
        return max(values, default=None)
    return percentile(values, float(point.removeprefix("p")))


def spread_ms(values: list[float], points: tuple[str, ...] = ("p50", "p99")) -> dict[str, float | None]:
    """Nanosecond samples as milliseconds at each of ``points``."""
    return {point: ms(at_point(values, point)) for point in points}


def cpu_ms_per_request(cpu_s: dict[str, float], requests: int) -> dict[str, float | None]:
    """CPU time each watched process spent in the window, per request answered in it."""
    return {name: round(seconds * 1000 / requests, 3) if requests else None for name, seconds in cpu_s.items()}


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    """One run's figures. Percentiles are over successful requests; stalls over every stream."""
    outcomes = raw["outcomes"]
    ok = [o for o in outcomes if o["ok"]]
    return {
        "requests": len(outcomes), "ok": len(ok), "errors": len(outcomes) - len(ok),
        "first_error": next((o["error"] for o in outcomes if not o["ok"]), None),
        "elapsed_s": round(raw["elapsed"], 3),
        "rps": round(len(ok) / raw["elapsed"], 1) if raw["elapsed"] else None,
        "ttfb_ms": spread_ms([o["ttfb_ns"] for o in ok if o["ttfb_ns"] is not None], ("p50", "p95", "p99")),
        "latency_ms": spread_ms([o["total_ns"] for o in ok]),
        "event_ms": spread_ms([lat for o in ok for lat in o["event_latency_ns"]]),
        "max_gap_ms": spread_ms([o["max_gap_ns"] for o in outcomes], ("p50", "p99", "max")),
        "stalls": sum(1 for o in outcomes if o["max_gap_ns"] > STALL_NS),
        "cpu_s": raw["cpu_s"],
        "cpu_ms_per_request": cpu_ms_per_request(raw["cpu_s"], len(outcomes)),
        "core_load": raw["core_load"],
        "loadgen_cores": raw["cores"],
    }


def difference(proxied: dict[str, float | None], direct: dict[str, float | None]) -> dict[str, float | None]:
    return {point: None if proxied.get(point) is None or direct.get(point) is None else round(proxied[point] - direct[point], 3)  # type: ignore[operator]
            for point in proxied}


def versus_direct(proxied: dict[str, Any], direct: dict[str, Any]) -> dict[str, Any]:
    """What the proxy adds to the direct run just before it (proxied − direct), and the req/s ratio."""
    added = {key: difference(proxied[key], direct[key]) for key in ("ttfb_ms", "latency_ms", "event_ms", "max_gap_ms")}
    ratio = round(proxied["rps"] / direct["rps"], 3) if proxied["rps"] and direct["rps"] else None
    return {"added": added, "rps_ratio": ratio}


def proxy_core_share(summary: dict[str, Any], core: int) -> dict[str, float] | None:
    """How busy the proxy's core was in the window, and how much of that was not the proxy
    (another process on it, or the kernel's interrupt work): a check that the pinning held."""
    load = summary["core_load"].get(str(core))  # JSON keys
    proxy_cpu_s = summary["cpu_s"].get("proxy")
    if load is None or proxy_cpu_s is None or not summary["elapsed_s"]:
        return None
    proxy_share = proxy_cpu_s / summary["elapsed_s"]
    return {"busy": load["busy"], "proxy": round(proxy_share, 3), "other": round(max(0.0, load["busy"] - proxy_share), 3),
            "steal": load["steal"]}


def pinning_check(rows: list[dict[str, Any]]) -> str:
    """The pinning check: did anything but the proxy use its core, and did the hypervisor steal time?"""
    shares = [r["proxy_core"] for r in rows if r.get("proxy_core")]
    steal = [load["steal"] for r in rows for load in r["core_load"].values()]
    if not shares:
        return "not measured"
    return (f"busy up to {max(s['busy'] for s in shares):.0%} of the time, the proxy itself up to {max(s['proxy'] for s in shares):.0%}, "
            f"anything else (other processes, interrupt work) up to {max(s['other'] for s in shares):.0%}; "
            f"time stolen by the hypervisor up to {max(steal, default=0):.0%} on any core")


def reference_work_range(rows: list[dict[str, Any]]) -> str:
    """How much the proxy core's own speed moved during the run (see bench/environment.py)."""
    times = [r["reference_work_ms"] for r in rows if r.get("reference_work_ms")]
    if not times:
        return "not measured"
    return f"{min(times)} – {max(times)} ms (slowest {max(times) / min(times) - 1:.0%} above the fastest)"
