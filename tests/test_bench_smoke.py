"""A small run of the benchmark: it must start everything on its cores, measure every scenario
direct and proxied in both repetitions, and write its report with the targets evaluated. Timings
are not asserted here (that is what ``make bench`` is for)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from bench.run import main

pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the benchmark pins the proxy apart: 2 cores needed")


def test_quick_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    affinity_before = os.sched_getaffinity(0)
    results = main(["--quick", "--out", str(tmp_path)])
    assert os.sched_getaffinity(0) == affinity_before, "the benchmark must give this process its cores back"
    rows = results["runs"]
    assert all(r["errors"] == 0 and r["ok"] == r["requests"] > 0 for r in rows), [r for r in rows if r["errors"]]
    assert {"direct", "openai", "responses", "openai/ws"} <= {r["target"] for r in rows}
    assert {r["kind"] for r in rows} == {"ttfb", "inter_event", "throughput", "streams"}

    proxied = [r for r in rows if r["target"] != "direct"]
    for row in proxied:  # each proxied run is paired with the direct run just before it
        partner = rows[row["pair_of"]]
        assert partner["target"] == "direct" and (partner["scenario"], partner["rep"]) == (row["scenario"], row["rep"])
        assert row["pair_of"] == rows.index(row) - 1
        assert row["vs_direct"]["added"]["latency_ms"]["p50"] is not None
        assert row["cpu_ms_per_request"]["proxy"] is not None and row["proxy_peak_rss_mb"] > 0
        assert row["reference_work_ms"] > 0 and row["proxy_core"]["busy"] >= 0
    assert set(Counter((r["scenario"], r["target"]) for r in proxied).values()) == {2}, "two repetitions of each"
    assert all(r["event_ms"]["p50"] >= 0 for r in rows if r["kind"] == "inter_event")
    assert all(r["max_gap_ms"]["max"] >= r["ttfb_ms"]["p50"] for r in rows if r["kind"] == "streams")  # first wait counts

    processes = results["setup"]["processes"]
    assert processes["proxy"]["cores"] == [0] and processes["proxy (websocket)"]["cores"] == [0]
    assert 0 not in processes["fake"]["cores"] + processes["loadgen"]["cores"] + results["setup"]["orchestrator_cores"]

    verdicts = {v["target"]: v["passed"] for v in results["targets"]}
    assert len(verdicts) == 7
    assert [v for t, v in verdicts.items() if "concurrent streams" in t] == [None, None]  # --quick runs 10 streams only
    assert all(v in (True, False) for t, v in verdicts.items() if "concurrent streams" not in t)

    written = sorted(tmp_path.iterdir())
    assert [p.suffix for p in written] == [".json", ".md"]
    assert json.loads(written[0].read_text())["runs"] == json.loads(json.dumps(rows))
    report = written[1].read_text()
    for title in ("## TTFB", "## Inter-event", "## Non-streamed", "## Concurrent streams", "## Targets", "Pinning: proxy on core 0"):
        assert title in report
