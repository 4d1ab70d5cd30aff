"""The benchmark's other two processes: the fake Codex backend and the load generator, each pinned."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Collection
from typing import Any

import httpx
import orjson

from bench.cores import pinned_to
from bench.proxy import ROOT
from codex_fake import mint_access_token

ACCOUNT = "bench-account"
# What every scenario resets first: no request recording (it costs the fake CPU), no delays.
FAKE_DEFAULTS = {"record_requests": False, "events": 20, "event_delay_ms": 0, "ttfb_ms": 0, "ttft_ms": 0}


class FakeBackend:
    """``python -m codex_fake --stamp-events`` in its own process, reconfigured over /__fake between runs."""

    def __init__(self, cores: Collection[int]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "codex_fake", "--port", "0", "--stamp-events"], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, preexec_fn=pinned_to(cores),
        )
        assert self.process.stdout is not None
        self.base = self.process.stdout.readline().strip().rsplit(" ", 1)[-1]  # "fake codex listening on <url>"
        self.token = mint_access_token(account_id=ACCOUNT, expires_in=24 * 3600)

    @property
    def pid(self) -> int:
        return self.process.pid

    def configure(self, **knobs: Any) -> None:
        httpx.post(self.base + "/__fake/config", json={**FAKE_DEFAULTS, **knobs}).raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class LoadGenerator:
    """``python -m bench.loadgen``, started once and fed one job at a time (see bench/loadgen.py)."""

    def __init__(self, cores: Collection[int]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            preexec_fn=pinned_to(cores),
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(orjson.dumps(job) + b"\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the load generator exited with {self.process.wait()}")
        answer = orjson.loads(line)
        if "failed" in answer:
            raise RuntimeError(f"load generator failed:\n{answer['failed']}")
        return answer

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
