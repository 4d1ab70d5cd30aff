"""One benchmark session: the three pinned processes, and every scenario run interleaved.

Wall-clock speed on a shared VM drifts by tens of percent from one minute to the next, so a proxied
run is only ever compared with a direct run made just before it: for each repetition and route,
direct then proxied (direct, openai, direct, responses, …, then all of it again). "Added" is
proxied − that direct run, and every repetition is reported, so the drift shows instead of hiding.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.cores import CoreLayout, cores_in_use, running_on
from bench.environment import reference_work_ms
from bench.processes import ACCOUNT, FakeBackend, LoadGenerator
from bench.procstat import RssSampler
from bench.proxy import BIN, ROOT, ProxyProcess
from bench.routes import CODEX_BODY, CODEX_PATH, ROUTES, Route
from bench.scenarios import Scenario
from bench.stats import pinning_check, proxy_core_share, reference_work_range, summarize, versus_direct

PROXY_KEY = "bench-key"


class Session:
    """Starts the fake, the proxy and the load generator on their cores; ``close()`` stops them."""

    def __init__(self, args: argparse.Namespace, layout: CoreLayout) -> None:
        self.args = args
        self.layout = layout
        self.tmp = tempfile.TemporaryDirectory(prefix="codex-bench-")
        self.fake = FakeBackend(layout.load)
        self.loadgen = LoadGenerator(layout.load)
        self.proxy = self._start_proxy(Path(self.tmp.name))
        self.routes = [ROUTES[name] for name in args.protocols if self._serves(ROUTES[name])]
        self.runs: list[dict[str, Any]] = []

    def _start_proxy(self, data_dir: Path) -> ProxyProcess:
        """As users run it: default verbosity (its per-flow output goes to a file), or -q if asked."""
        config = {"server": {"proxy_api_key": PROXY_KEY}, "api": {"base_url": self.fake.base + "/backend-api"},
                  "client": {"version_feed_url": None},
                  "auth": {"oauth_issuer": self.fake.base}}
        proxy = ProxyProcess(data_dir, config, args=("-q",) if self.args.quiet else (), cores=[self.layout.proxy])
        proxy.start()
        proxy.add_account(self.fake.token)
        return proxy

    def _serves(self, route: Route) -> bool:
        """Routes appear as protocols land; only measure the ones this build answers."""
        response = httpx.post(self.proxy.origin + route.collect_path, headers=route.headers(self.proxy.key),
                              json=route.collect_body, timeout=30)
        return response.status_code == 200

    def processes(self) -> dict[str, dict[str, Any]]:
        """Each process's pid and the cores its threads may run on, as the kernel reports them."""
        pids = {"proxy": self.proxy.pid, "fake": self.fake.pid, "loadgen": self.loadgen.pid}
        return {name: {"pid": pid, "cores": cores_in_use(pid)} for name, pid in pids.items()}

    def proxy_command(self) -> str:
        """The proxy's command line as a user would type it (relative paths, the data folder named)."""
        command = " ".join(self.proxy.command())
        for path, shown in ((str(BIN) + "/", ""), (str(ROOT) + "/", ""), (str(self.proxy.data_dir), "<data>")):
            command = command.replace(path, shown)
        return command

    def proxy_output(self) -> str:
        verbosity = "-q" if self.args.quiet else "mitmproxy's default verbosity"
        return f"{verbosity}; its output went to a file ({self.proxy.log().count(chr(10))} lines over the run)"

    def describe(self) -> dict[str, Any]:
        """How this session ran, for the report: call it before ``close()``."""
        return {"layout": self.layout.describe(), "processes": self.processes(), "orchestrator_cores": sorted(os.sched_getaffinity(0)),
                "proxy_command": self.proxy_command(), "proxy_output": self.proxy_output(), "repeat": self.args.repeat,
                "routes": [r.name for r in self.routes], "proxy_core_summary": pinning_check(self.runs),
                "reference_work_ms": reference_work_range(self.runs)}

    def close(self) -> None:
        self.loadgen.stop()
        self.proxy.stop()
        self.fake.stop()
        self.tmp.cleanup()

    # --- jobs --------------------------------------------------------------------------------------

    def direct_job(self, scenario: Scenario) -> dict[str, Any]:
        """The fake's own endpoint, always streamed (that is what the proxy asks it for)."""
        headers = {"Authorization": f"Bearer {self.fake.token}", "ChatGPT-Account-Id": ACCOUNT,
                   "Content-Type": "application/json", "Accept": "text/event-stream"}
        return {**scenario.job, "stream": True, "url": self.fake.base + CODEX_PATH, "body": CODEX_BODY, "headers": headers,
                "watch": {"fake": self.fake.pid}}

    def proxy_job(self, scenario: Scenario, route: Route) -> dict[str, Any]:
        stream = bool(scenario.job.get("stream"))
        return {**scenario.job, "url": self.proxy.origin + (route.stream_path if stream else route.collect_path),
                "body": route.stream_body if stream else route.collect_body, "headers": route.headers(self.proxy.key),
                "watch": {"proxy": self.proxy.pid, "fake": self.fake.pid}}

    # --- running -----------------------------------------------------------------------------------

    def pairs(self, scenario: Scenario) -> Iterator[tuple[int, Route]]:
        """(repetition, route) in the order they run: every route once per repetition."""
        routes = self.routes if scenario.all_routes else self.routes[:1]
        for rep in range(1, self.args.repeat + 1):
            for route in routes:
                yield rep, route

    def run(self, scenario: Scenario) -> None:
        self.fake.configure(**scenario.fake)
        for rep, route in self.pairs(scenario):
            core_speed = self.proxy_core_speed()
            direct = self.record(scenario, "direct", rep, summarize(self.loadgen.run(self.direct_job(scenario))))
            proxied = self.record(scenario, route.name, rep, self.measure_proxied(self.proxy_job(scenario, route)))
            proxied["vs_direct"] = versus_direct(proxied, direct)
            proxied["pair_of"] = len(self.runs) - 2  # index of its direct run in ``runs``
            proxied["reference_work_ms"] = core_speed
            print_pair(direct, proxied)

    def proxy_core_speed(self) -> float:
        """The reference work's time on the proxy's core, while the proxy is idle between runs."""
        with running_on([self.layout.proxy]):
            return reference_work_ms()

    def measure_proxied(self, job: dict[str, Any]) -> dict[str, Any]:
        """A run through the proxy, with its peak memory and how its core was shared meanwhile."""
        with RssSampler(self.proxy.pid) as rss:
            summary = summarize(self.loadgen.run(job))
        summary["proxy_peak_rss_mb"] = round(rss.peak_kb / 1024, 1)
        summary["proxy_core"] = proxy_core_share(summary, self.layout.proxy)
        return summary

    def record(self, scenario: Scenario, target: str, rep: int, summary: dict[str, Any]) -> dict[str, Any]:
        row = {"scenario": scenario.name, "kind": scenario.kind, "size": scenario.size, "target": target, "rep": rep, **summary}
        self.runs.append(row)
        return row


def print_pair(direct: dict[str, Any], proxied: dict[str, Any]) -> None:
    """A progress line per pair, so a long run shows where it is."""
    added = proxied["vs_direct"]["added"]
    print(f"  {proxied['scenario']:<24} rep {proxied['rep']} {proxied['target']:<10} "
          f"ok {direct['ok']}/{direct['requests']} | {proxied['ok']}/{proxied['requests']}  "
          f"req/s {direct['rps']} | {proxied['rps']}  ttfb p50 {direct['ttfb_ms']['p50']} | {proxied['ttfb_ms']['p50']} "
          f"(added {added['ttfb_ms']['p50']})  stalls {direct['stalls']} | {proxied['stalls']}  "
          f"proxy cpu/req {proxied['cpu_ms_per_request'].get('proxy')} ms", flush=True)
