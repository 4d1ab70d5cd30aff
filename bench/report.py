"""The Markdown report: how the run was set up, one table per scenario kind (each proxied run beside
the direct run made just before it), the targets last."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from bench.cores import format_cores

Row = dict[str, Any]


def fmt(value: Any, sign: bool = False) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:+.3f}" if sign else f"{value:g}"
    return str(value)


def table(header: list[str], lines: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(cell) for cell in line) + " |" for line in lines]
    return out + [""]


def pairs(rows: list[Row], kind: str) -> Iterator[tuple[Row, Row]]:
    """(direct, proxied) for each proxied run of ``kind``, in run order."""
    for row in rows:
        if row["kind"] == kind and row["target"] != "direct":
            yield rows[row["pair_of"]], row


def both(direct: Row, proxied: Row, figure: str, point: str) -> list[Any]:
    """Direct, proxied and added at one point of a figure: three cells."""
    return [direct[figure][point], proxied[figure][point], fmt(proxied["vs_direct"]["added"][figure][point], sign=True)]


def proxy_cpu(row: Row) -> Any:
    return row["cpu_ms_per_request"].get("proxy")


def ttfb_lines(rows: list[Row]) -> list[list[Any]]:
    return [[p["target"], p["rep"], *both(d, p, "ttfb_ms", "p50"), *both(d, p, "ttfb_ms", "p99"), proxy_cpu(p), p["reference_work_ms"]]
            for d, p in pairs(rows, "ttfb")]


def inter_event_lines(rows: list[Row]) -> list[list[Any]]:
    def per_event_us(row: Row) -> float | None:
        cpu, events = proxy_cpu(row), row["size"]["events"]
        return round(cpu * 1000 / events, 1) if cpu is not None and events else None

    return [[p["target"], p["rep"], *both(d, p, "event_ms", "p50"), *both(d, p, "event_ms", "p99"), per_event_us(p),
             p["reference_work_ms"]]
            for d, p in pairs(rows, "inter_event")]


def throughput_lines(rows: list[Row]) -> list[list[Any]]:
    return [[p["scenario"].removeprefix("non-stream c="), p["target"], p["rep"], d["rps"], p["rps"], p["vs_direct"]["rps_ratio"],
             fmt(p["vs_direct"]["added"]["latency_ms"]["p50"], sign=True), fmt(p["vs_direct"]["added"]["latency_ms"]["p99"], sign=True),
             proxy_cpu(p), d["cpu_ms_per_request"].get("fake"), p["reference_work_ms"]]
            for d, p in pairs(rows, "throughput")]


def side_by_side(direct: Row, proxied: Row, get: Callable[[Row], Any]) -> str:
    return f"{fmt(get(direct))} / {fmt(get(proxied))}"


def longest_gap(point: str) -> Callable[[Row], Any]:
    return lambda row: row["max_gap_ms"][point]


def streams_lines(rows: list[Row]) -> list[list[Any]]:
    return [[p["requests"], p["target"], p["rep"],
             side_by_side(d, p, lambda r: f"{r['ok']}/{r['requests']}"), side_by_side(d, p, lambda r: r["errors"]),
             side_by_side(d, p, lambda r: r["stalls"]), *(side_by_side(d, p, longest_gap(point)) for point in ("p50", "p99", "max")),
             p["proxy_peak_rss_mb"], proxy_cpu(p), p["reference_work_ms"]]
            for d, p in pairs(rows, "streams")]


REF = "ref. work ms"  # the proxy core's own speed just before the pair (bench/environment.py)
SECTIONS: list[tuple[str, str, list[str], Callable[[list[Row]], list[list[Any]]]]] = [
    ("ttfb", "TTFB, 1 request in flight (streamed; ms from sending to the first content token)",
     ["route", "rep", "direct p50", "proxied p50", "added p50", "direct p99", "proxied p99", "added p99", "proxy CPU ms/req", REF],
     ttfb_lines),
    ("inter_event", "Inter-event latency in long streams (ms from the fake's send stamp to receipt, per event)",
     ["route", "rep", "direct p50", "proxied p50", "added p50", "direct p99", "proxied p99", "added p99", "proxy CPU µs/event", REF],
     inter_event_lines),
    ("throughput", "Non-streamed requests per second (ratio = proxied / direct req/s)",
     ["in flight", "route", "rep", "direct req/s", "proxied req/s", "ratio", "added latency p50 ms", "added latency p99 ms",
      "proxy CPU ms/req", "fake CPU ms/req (direct)", REF],
     throughput_lines),
    ("streams", "Concurrent streams (direct / proxied; a stall is > 1 s without an event, the wait for the first included)",
     ["streams", "route", "rep", "completed", "errors", "stalls", "max gap p50 ms", "max gap p99 ms", "max gap max ms",
      "proxy peak RSS MB", "proxy CPU ms/stream", REF],
     streams_lines),
]


def setup_lines(results: dict[str, Any]) -> list[str]:
    m, s = results["machine"], results["setup"]
    cores = "; ".join(f"{name} (pid {p['pid']}) {format_cores(p['cores'])}" for name, p in s["processes"].items())
    return [
        f"# Benchmark {results['date']} — commit {results['commit']}",
        "",
        f"- Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB, Python {m['python']}, {m['platform']}",
        f"- Pinning: {s['layout']}. Read back from the kernel: {cores}; this orchestrator {format_cores(s['orchestrator_cores'])}",
        f"- Proxy: `{s['proxy_command']}`, {s['proxy_output']}",
        f"- Order: each proxied run right after its own direct run; {s['repeat']} repetitions; added = proxied − direct",
        f"- Core speed: a fixed loop on the proxy's core before each pair ({REF}, lower is faster) took {s['reference_work_ms']}",
        f"- Cores busy before the start: {', '.join(f'core {c} {b:.0%}' for c, b in s['load_before_start'].items())}; "
        f"the proxy's core during proxied runs: {s['proxy_core_summary']}",
        "",
    ]


def error_lines(rows: list[Row]) -> list[str]:
    failed = [r for r in rows if r["errors"]]
    if not failed:
        return []
    return ["## Errors", ""] + [f"- {r['scenario']} {r['target']} rep {r['rep']}: {r['errors']} × {r['first_error']}" for r in failed] + [""]


def target_lines(verdicts: list[dict[str, Any]]) -> list[str]:
    result = {True: "pass", False: "**FAIL**", None: "not run"}
    return ["## Targets", ""] + table(["target", "measured", "result"],
                                      [[v["target"], v["measured"], result[v["passed"]]] for v in verdicts])


def markdown(results: dict[str, Any]) -> str:
    rows = results["runs"]
    lines = setup_lines(results)
    for kind, title, header, make in SECTIONS:
        if body := make(rows):
            lines += [f"## {title}", "", *table(header, body)]
    lines += error_lines(rows) + target_lines(results["targets"])
    return "\n".join(lines)
