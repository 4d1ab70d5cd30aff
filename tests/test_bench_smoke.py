"""A small run of the benchmark: it must start everything, measure every route and write its
report. Timings are not asserted here (that is what ``make bench`` is for)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.run import main


def test_quick_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    results = main(["--quick", "--out", str(tmp_path)])
    rows = results["runs"]
    targets = {r["target"] for r in rows}
    assert {"direct", "openai", "responses"} <= targets
    assert all(r["errors"] == 0 and r["ok"] == r["requests"] > 0 for r in rows), [r for r in rows if r["errors"]]
    scenarios = {r["scenario"].split(" (")[0].split(" c=")[0] for r in rows}
    assert {"ttfb", "inter-event", "non-stream", "10 concurrent streams"} <= scenarios
    event_rows = [r for r in rows if r["scenario"].startswith("inter-event")]
    assert all(r["event_ms"][50] is not None and r["event_ms"][50] >= 0 for r in event_rows)
    assert any(r.get("peak_rss_mb", 0) > 0 for r in rows)
    written = sorted(tmp_path.iterdir())
    assert [p.suffix for p in written] == [".json", ".md"]
    assert json.loads(written[0].read_text())["runs"] == json.loads(json.dumps(rows))
    assert "| scenario |" in written[1].read_text()
