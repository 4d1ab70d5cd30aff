"""``python -m bench`` (``make bench``): what the proxy costs, side by side with calling the fake
Codex backend directly.

It starts the fake (``python -m codex_fake --stamp-events``) and the proxy as users run it
(``mitmdump -s addons/codex.py``), each in its own process, then runs the load generator
(``bench.loadgen``) in a third process against the fake directly and through the proxy, for every
protocol route the proxy serves. Results go to ``bench-results/<time>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from codex_fake import mint_access_token
from tests.support.proxy import ROOT, ProxyProcess

ACCOUNT = "bench-account"
PROMPT = "Benchmark prompt."


@dataclass(frozen=True, slots=True)
class Route:
    """One way to ask for a turn: the same model request in a protocol's own shape."""

    name: str
    path: str
    stream_body: dict[str, Any]
    collect_body: dict[str, Any]


ROUTES = {
    "openai": Route(
        "openai", "/v1/chat/completions",
        {"model": "gpt-5.4", "stream": True, "messages": [{"role": "user", "content": PROMPT}]},
        {"model": "gpt-5.4", "messages": [{"role": "user", "content": PROMPT}]},
    ),
    "responses": Route(
        "responses", "/v1/responses",
        {"model": "gpt-5.4", "stream": True, "input": PROMPT},
        {"model": "gpt-5.4", "input": PROMPT},
    ),
    "anthropic": Route(
        "anthropic", "/v1/messages",
        {"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": True, "messages": [{"role": "user", "content": PROMPT}]},
        {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": PROMPT}]},
    ),
    "gemini": Route(
        "gemini", "/v1beta/models/gpt-5.4:streamGenerateContent?alt=sse",
        {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]},
        {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]},
    ),
}
CODEX_BODY = {"model": "gpt-5.4", "instructions": "", "stream": True, "store": False,
              "input": [{"role": "user", "content": [{"type": "input_text", "text": PROMPT}]}]}


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def ms(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


class Fake:
    """The fake backend in its own process, reconfigured over its control API between runs."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "codex_fake", "--port", "0", "--stamp-events"], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        self.base = line.rsplit(" ", 1)[-1]
        self.token = mint_access_token(account_id=ACCOUNT, expires_in=24 * 3600)

    def configure(self, **knobs: Any) -> None:
        httpx.post(self.base + "/__fake/config", json={"record_requests": False, "events": 20, "event_delay_ms": 0,
                                                       "ttfb_ms": 0, "ttft_ms": 0, **knobs}).raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class RssSampler:
    """Peak resident memory of a process, sampled from /proc while a run is going."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> int:
        with contextlib.suppress(OSError), open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self._read())
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, self._read())


def loadgen(job: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.loadgen", json.dumps(job)], cwd=ROOT, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr.decode(errors='replace')[-2000:]}")
    return json.loads(done.stdout)


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    outcomes = raw["outcomes"]
    ok = [o for o in outcomes if o["ok"]]
    ttfb = [o["ttfb_ns"] for o in ok if o["ttfb_ns"] is not None]
    total = [o["total_ns"] for o in ok]
    events = [lat for o in ok for lat in o["event_latency_ns"]]
    return {
        "requests": len(outcomes), "ok": len(ok), "errors": len(outcomes) - len(ok),
        "first_error": next((o["error"] for o in outcomes if not o["ok"]), None),
        "rps": round(len(ok) / raw["elapsed"], 1) if raw["elapsed"] else None,
        "ttfb_ms": {p: ms(percentile(ttfb, p)) for p in (50, 95, 99)},
        "latency_ms": {p: ms(percentile(total, p)) for p in (50, 95, 99)},
        "event_ms": {p: ms(percentile(events, p)) for p in (50, 99)}, "event_ms_detail": {p: ms(percentile(events, p)) for p in (90, 95, 99.9)} if events else {},
        "stalls": sum(1 for o in outcomes if o["max_gap_ns"] > 1e9),
    }


def added(proxied: dict[str, Any], direct: dict[str, Any], key: str) -> dict[Any, float | None]:
    return {p: (None if proxied[key][p] is None or direct[key][p] is None else round(proxied[key][p] - direct[key][p], 3))
            for p in proxied[key]}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.fake = Fake()
        self.tmp = tempfile.TemporaryDirectory(prefix="codex-bench-")
        proxy_args = ("-q",) if args.quiet else ()
        config = {"server": {"proxy_api_key": "bench-key"}, "api": {"base_url": self.fake.base + "/backend-api"},
                  "auth": {"oauth_issuer": self.fake.base}}
        self.proxy = ProxyProcess(Path(self.tmp.name), config, args=proxy_args)
        self.proxy.start()
        self.proxy.add_account(self.fake.token)
        self.routes = [ROUTES[name] for name in args.protocols if self._serves(ROUTES[name])]
        self.results: dict[str, Any] = {"machine": machine(), "config": vars(args), "runs": []}

    def _serves(self, route: Route) -> bool:
        """Routes appear as protocols land; only measure the ones this build answers."""
        response = httpx.post(self.proxy.origin + route.path, headers=self._headers(route), json=route.collect_body, timeout=30)
        return response.status_code == 200

    def _headers(self, route: Route) -> dict[str, str]:
        key = self.proxy.key
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        if route.name == "anthropic":
            headers["x-api-key"] = key
        return headers

    def direct_job(self, **job: Any) -> dict[str, Any]:
        return {"url": self.fake.base + "/backend-api/codex/responses", "body": CODEX_BODY,
                "headers": {"Authorization": f"Bearer {self.fake.token}", "ChatGPT-Account-Id": ACCOUNT,
                            "Content-Type": "application/json", "Accept": "text/event-stream"}, **job}

    def proxy_job(self, route: Route, **job: Any) -> dict[str, Any]:
        stream = bool(job.get("stream"))
        path = route.path if stream or route.name != "gemini" else "/v1beta/models/gpt-5.4:generateContent"
        return {"url": self.proxy.origin + path, "body": route.stream_body if stream else route.collect_body,
                "headers": self._headers(route), **job}

    def record(self, scenario: str, target: str, summary: dict[str, Any], **extra: Any) -> dict[str, Any]:
        row = {"scenario": scenario, "target": target, **summary, **extra}
        self.results["runs"].append(row)
        print(f"  {scenario:<28} {target:<12} ok {summary['ok']}/{summary['requests']}  rps {summary['rps']}  "
              f"ttfb p50 {summary['ttfb_ms'][50]}  event p99 {summary['event_ms'][99]}  {extra or ''}", flush=True)
        return row

    # --- scenarios ----------------------------------------------------------------------------------

    def ttfb(self) -> None:
        """Streaming, one request in flight: time to the first content token."""
        n = self.args.ttfb_requests
        self.fake.configure(events=20)
        direct = summarize(loadgen(self.direct_job(stream=True, requests=n, warmup=20, per_event=False)))
        self.record("ttfb (1 in flight)", "direct", direct)
        for route in self.routes:
            proxied = summarize(loadgen(self.proxy_job(route, stream=True, requests=n, warmup=20, per_event=False)))
            self.record("ttfb (1 in flight)", route.name, proxied, added_ttfb_ms=added(proxied, direct, "ttfb_ms"))

    def inter_event(self) -> None:
        """Long streams: per-event latency (receive time − the fake's send stamp)."""
        events, delay = self.args.long_events, self.args.event_delay_ms
        self.fake.configure(events=events, event_delay_ms=delay)
        job = {"stream": True, "requests": self.args.long_streams, "min_events": events}
        direct = summarize(loadgen(self.direct_job(**job)))
        self.record(f"inter-event ({events} ev)", "direct", direct)
        for route in self.routes:
            proxied = summarize(loadgen(self.proxy_job(route, **job)))
            self.record(f"inter-event ({events} ev)", route.name, proxied, added_event_ms=added(proxied, direct, "event_ms"))

    def throughput(self) -> None:
        """Non-streamed requests per second at several concurrencies (the proxy collects the stream)."""
        self.fake.configure(events=5)
        for concurrency in self.args.concurrency:
            job = {"concurrency": concurrency, "duration": self.args.duration, "warmup": 10, "per_event": False}
            direct = summarize(loadgen(self.direct_job(stream=True, **job)))
            self.record(f"non-stream c={concurrency}", "direct", direct)
            for route in self.routes:
                proxied = summarize(loadgen(self.proxy_job(route, **job)))
                self.record(f"non-stream c={concurrency}", route.name, proxied, added_latency_ms=added(proxied, direct, "latency_ms"))

    def many_streams(self) -> None:
        """N long streams at once: completed, errors, stalls (>1 s without an event), peak proxy RSS."""
        events, delay = self.args.many_events, self.args.many_delay_ms
        self.fake.configure(events=events, event_delay_ms=delay)
        for n in self.args.streams:
            job = {"stream": True, "concurrency": n, "requests": n, "min_events": events, "per_event": False, "timeout": 300}
            for route in self.routes[:1] if not self.args.all_routes_streams else self.routes:
                with RssSampler(self.proxy.process.pid) as rss:  # type: ignore[union-attr]
                    summary = summarize(loadgen(self.proxy_job(route, **job)))
                self.record(f"{n} concurrent streams", route.name, summary, peak_rss_mb=round(rss.peak_kb / 1024, 1))

    def run(self) -> dict[str, Any]:
        try:
            print(f"proxy pid {self.proxy.process.pid}, routes: {[r.name for r in self.routes]}", flush=True)  # type: ignore[union-attr]
            for step in self.args.steps:
                getattr(self, step)()
        finally:
            self.proxy.stop()
            self.fake.stop()
            self.tmp.cleanup()
        return self.results


def machine() -> dict[str, Any]:
    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as info:
        mem_kb = int(next(line for line in info if line.startswith("MemTotal")).split()[1])
    return {"cpus": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1), "python": platform.python_version(),
            "platform": platform.platform()}


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [f"Machine: {m['cpus']} CPUs, {m['memory_gb']} GB, Python {m['python']}, {m['platform']}", "",
             "| scenario | target | ok | req/s | TTFB p50/p95/p99 ms | latency p50/p99 ms | event p50/p99 ms | added | stalls | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        add = r.get("added_ttfb_ms") or r.get("added_event_ms") or r.get("added_latency_ms") or {}
        added_text = " / ".join(f"p{p} {v:+}" for p, v in add.items() if v is not None)
        lines.append(
            f"| {r['scenario']} | {r['target']} | {r['ok']}/{r['requests']} | {r['rps']} | "
            f"{'/'.join(str(r['ttfb_ms'][p]) for p in (50, 95, 99))} | {r['latency_ms'][50]}/{r['latency_ms'][99]} | "
            f"{r['event_ms'][50]}/{r['event_ms'][99]} | {added_text} | {r['stalls']} | {r.get('peak_rss_mb', '')} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in seconds")
    p.add_argument("--protocols", default="openai,responses,anthropic,gemini", type=lambda s: s.split(","))
    p.add_argument("--steps", default="ttfb,inter_event,throughput,many_streams", type=lambda s: s.split(","))
    p.add_argument("--ttfb-requests", type=int, default=300)
    p.add_argument("--long-events", type=int, default=500)
    p.add_argument("--long-streams", type=int, default=5)
    p.add_argument("--event-delay-ms", type=float, default=2)
    p.add_argument("--concurrency", default=[1, 16, 64], type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--streams", default=[100, 500, 1000], type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--many-events", type=int, default=30)
    p.add_argument("--many-delay-ms", type=float, default=100)
    p.add_argument("--all-routes-streams", action="store_true", help="run the concurrent-streams step for every route")
    p.add_argument("--quiet", action="store_true", help="run mitmdump with -q (no per-flow log line)")
    p.add_argument("--out", default=str(ROOT / "bench-results"))
    args = p.parse_args(argv)
    if args.quick:
        args.ttfb_requests, args.long_events, args.long_streams, args.duration = 20, 50, 1, 1.0
        args.concurrency, args.streams, args.many_events, args.many_delay_ms = [1, 4], [10], 5, 20
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    results = Bench(args).run()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"{stamp}.json").write_text(json.dumps(results, indent=2))
    report = markdown(results)
    (out / f"{stamp}.md").write_text(report)
    print("\n" + report)
    print(f"written: {out / stamp}.json and .md")
    return results
