"""The benchmark's own logic, without running it: core planning, stall counting, targets."""

from __future__ import annotations

import pytest

from bench.cores import CoreLayout, CoreLayoutError, parse_cores, plan_cores
from bench.loadgen import Outcome
from bench.targets import evaluate


def test_one_core_is_a_clear_error_not_an_unpinned_run() -> None:
    with pytest.raises(CoreLayoutError, match="at least 2 CPU cores"):
        plan_cores(0, None, [0])


def test_the_load_gets_every_other_core_by_default() -> None:
    assert plan_cores(0, None, [0, 1, 2, 3]) == CoreLayout(0, (1, 2, 3))
    assert plan_cores(2, parse_cores("0-1,3"), [0, 1, 2, 3]) == CoreLayout(2, (0, 1, 3))


@pytest.mark.parametrize(("proxy", "load", "message"), [(5, None, "not available"), (0, "0,1", "must not share"), (0, "7", "not available")])
def test_impossible_layouts_are_refused(proxy: int, load: str | None, message: str) -> None:
    with pytest.raises(CoreLayoutError, match=message):
        plan_cores(proxy, parse_cores(load) if load else None, [0, 1, 2])


def test_the_wait_for_the_first_event_and_the_silence_before_the_end_are_gaps() -> None:
    first_late = Outcome(start=0, last_event=0)
    first_late.saw_event(1_500_000_000, stamp=0, keep_latency=False)
    assert first_late.max_gap_ns == 1_500_000_000
    steady = Outcome(start=0, last_event=0)
    for t in (100, 200, 300):
        steady.saw_event(t, stamp=t, keep_latency=True)
    assert steady.max_gap_ns == 100 and steady.event_latency_ns == [0, 0, 0]


def streams_row(streams: int, stalls: int, rss: float, rep: int = 1) -> dict:
    return {"scenario": f"{streams} concurrent streams", "kind": "streams", "target": "openai", "rep": rep, "ok": streams,
            "requests": streams, "stalls": stalls, "proxy_peak_rss_mb": rss, "max_gap_ms": {"max": 900.0}}


def test_a_target_holds_only_if_every_repetition_meets_it() -> None:
    rows = [streams_row(500, 0, 200), streams_row(500, 1, 200, rep=2), streams_row(1000, 0, 240), streams_row(1000, 0, 251, rep=2)]
    verdicts = {v.target: v for v in evaluate(rows)}
    assert verdicts["500 concurrent streams, none waits > 1 s for an event"].passed is False
    assert verdicts["1,000 concurrent streams, none waits > 1 s, peak RSS ≤ 250 MB"].passed is False
    assert verdicts["added TTFB p50 ≤ +2.0 ms"].passed is None  # not run
