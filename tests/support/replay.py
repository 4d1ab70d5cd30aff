"""Recorded upstream sessions: making them (``codex_record``) and serving them back as the Codex
backend with mitmproxy's own server replay (README "Record and replay"). Offline: the replaying
mitmdump answers from the file and kills anything it has no answer for; it never dials out."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mitmproxy import http, io

from codex_fake import FakeCodexThread
from tests.conftest import proxy_config, with_one_account
from tests.support.proxy import BIN, MitmProcess, ProxyProcess

# Real recordings are of this URL; fixtures made from the fake are rewritten to match.
CODEX_URL = "https://chatgpt.com/backend-api/codex/responses"
# The replaying proxy's target host is never contacted (every request is answered or killed).
REPLAY_TARGET = "https://replay.invalid"


def read_flows(path: Path) -> list[http.HTTPFlow]:
    with path.open("rb") as file:
        return [flow for flow in io.FlowReader(file).stream() if isinstance(flow, http.HTTPFlow)]


def write_flows(path: Path, flows: list[http.HTTPFlow]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        writer = io.FlowWriter(file)
        for flow in flows:
            writer.add(flow)


def record_session(fake: FakeCodexThread, folder: Path, drive: Callable[[ProxyProcess], Any]) -> list[http.HTTPFlow]:
    """Run ``drive`` against a proxy on the fake with ``codex_record`` on; the legs it recorded,
    shaped as if recorded from chatgpt.com."""
    recording = folder / "recording.flows"
    proxy = ProxyProcess(folder / "recorder", proxy_config(fake), args=("--set", f"codex_record={recording}")).start()
    try:
        with_one_account(proxy)
        drive(proxy)
    finally:
        proxy.stop()  # the recorder flushes each leg; stopping closes the file
    legs = read_flows(recording)
    for leg in legs:
        leg.request.url = CODEX_URL + ("?" + leg.request.query_string if leg.request.query else "")
        leg.server_conn.address = (leg.request.host, leg.request.port)
    return legs


class ReplayUpstream(MitmProcess):
    """``mitmdump --mode reverse:... --server-replay FILE``: the Codex backend, from a recording."""

    def __init__(self, recording: Path, folder: Path) -> None:
        super().__init__(folder / "replay.log")
        self.recording = recording
        self.port = 0

    @property
    def base_url(self) -> str:
        """What ``api.base_url`` should be."""
        return f"http://127.0.0.1:{self.port}/backend-api"

    def start(self, timeout: float = 20.0) -> ReplayUpstream:
        command = [
            str(BIN / "mitmdump"), "--mode", f"reverse:{REPLAY_TARGET}@0", "--listen-host", "127.0.0.1",
            "--server-replay", str(self.recording), "--set", "server_replay_extra=kill",
            "--set", "server_replay_ignore_host=true", "--set", "server_replay_ignore_content=true",
            "--set", "connection_strategy=lazy", "--set", "termlog_verbosity=info", "--set", "flow_detail=0",
        ]

        def ready() -> bool:
            if match := re.search(r"listening at \*?[\d.]*:(\d+)", self.log()):
                self.port = int(match[1])
            return bool(self.port)

        self.launch(command, ready, timeout)
        return self
