"""Upstream legs: each call to the Codex backend as a flow of its own, beside the client's flow.

The client's flow shows what the client sent and the translated answer it got; the leg shows the
translated request exactly as sent upstream (credentials redacted) and the raw event stream as
received. mitmweb lists legs next to client flows (each is added to mitmweb's View, then run
through the ``response``/``error`` hooks, so mitmweb, ``-w`` and ``codex_record`` all see it like
any other flow). Legs are only built when someone looks: under mitmweb, with a save file
(``-w``) or with ``codex_record``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from mitmproxy import connection, ctx, exceptions, hooks, http, io
from mitmproxy.addonmanager import Loader
from mitmproxy.flow import Error
from mitmproxy.proxy.layers.http import HttpErrorHook, HttpResponseHook

from core.gateway.redaction import redacted_headers

LEG_KEY = "codex.leg"  # metadata of a leg flow: {"client_flow": id, "attempt": n}
# The body we keep is what curl_cffi handed us (already decoded), so these would lie about it.
_BODY_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding", "connection"})


def is_leg(flow: http.HTTPFlow) -> bool:
    return LEG_KEY in flow.metadata


def legs_wanted() -> bool:
    """Someone will look at legs: mitmweb's View, a ``-w`` save file or a recording."""
    options = ctx.options
    return ctx.master.addons.get("view") is not None or bool(options.save_stream_file) or bool(options.codex_record)


def conclude(flow: http.HTTPFlow, error: str | None, pending: set[asyncio.Task[None]]) -> None:
    """Finish a flow we made ourselves: run it through the ``response`` (or ``error``) lifecycle so
    mitmweb, ``-w`` and ``codex_record`` treat it like any flow. ``pending`` keeps the task alive."""
    if error:
        flow.error = Error(error)
    event = HttpErrorHook(flow) if error else HttpResponseHook(flow)
    task = asyncio.get_running_loop().create_task(ctx.master.addons.handle_lifecycle(event))
    pending.add(task)
    task.add_done_callback(pending.discard)


class LegFlow:
    """One upstream call as it happens (a ``core.upstream.tap.Leg``)."""

    def __init__(self, flow: http.HTTPFlow, pending: set[asyncio.Task[None]]) -> None:
        self.flow = flow
        self._chunks: list[bytes] = []
        self._pending = pending
        self._ended = False
        view = ctx.master.addons.get("view")
        if view is not None:
            view.add([flow])  # shown at once, pending until the answer is in

    def response(self, status: int, headers: Mapping[str, str]) -> None:
        kept = [(k, v) for k, v in headers.items() if k.lower() not in _BODY_FRAMING]
        response = http.Response.make(status, b"", [(k.encode(), v.encode()) for k, v in redacted_headers(kept)])
        response.timestamp_start = time.time()
        self.flow.response = response
        ctx.master.addons.trigger(hooks.UpdateHook([self.flow]))

    def data(self, chunk: bytes) -> None:
        self._chunks.append(chunk)

    def end(self, error: str | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        flow = self.flow
        if flow.response is not None:
            flow.response.content = b"".join(self._chunks)
            flow.response.timestamp_end = time.time()
        self._chunks = []
        conclude(flow, error, self._pending)


class TurnLegs:
    """The tap for one client flow: every call to the Codex backend becomes a leg."""

    def __init__(self, client: http.HTTPFlow, base_url: str, pending: set[asyncio.Task[None]]) -> None:
        self._client_id = client.id
        self._label = f"{client.request.method} {client.request.pretty_url}"  # before any bridge rewrite
        self._base_url = base_url.rstrip("/") + "/"
        self._pending = pending
        self.count = 0

    def open(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> LegFlow | None:
        if not url.startswith(self._base_url):
            return None  # token refreshes and other side calls are not part of the turn
        self.count += 1
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        now = time.time()
        client = connection.Client(peername=("127.0.0.1", 0), sockname=("127.0.0.1", 0), timestamp_start=now)
        flow = http.HTTPFlow(client, connection.Server(address=(parts.hostname or "", port)))
        request = http.Request.make(method, url, b"", [(k.encode(), v.encode()) for k, v in redacted_headers(headers.items())])
        request.raw_content = body or b""  # exactly the bytes sent
        request.headers["content-length"] = str(len(request.raw_content))
        request.timestamp_start = request.timestamp_end = now
        flow.request = request
        flow.metadata[LEG_KEY] = {"client_flow": self._client_id, "attempt": self.count}
        flow.comment = f"upstream leg {self.count} of {self._label} (flow {self._client_id[:8]})"
        return LegFlow(flow, self._pending)


class UpstreamLegs:
    """Hands out a tap per client flow when legs are wanted; keeps their lifecycle tasks alive.
    An addon only to notice when that changes: reading mitmproxy options deep-copies them, too
    dear for every request."""

    def __init__(self) -> None:
        self._pending: set[asyncio.Task[None]] = set()
        self.wanted = False

    def running(self) -> None:
        self.wanted = legs_wanted()

    def configure(self, updated: set[str]) -> None:
        if updated & {"save_stream_file", "codex_record"}:
            self.wanted = legs_wanted()

    def tap(self, client: http.HTTPFlow, base_url: str) -> TurnLegs | None:
        return TurnLegs(client, base_url, self._pending) if self.wanted else None


class LegRecorder:
    """``--set codex_record=FILE``: append every upstream leg to a mitmproxy flow file, in order and
    off the event loop, for replaying as the upstream later (README "Record and replay"). Like
    mitmproxy's own ``-w``, the file is opened when the option is set, so a bad path fails at once."""

    def __init__(self) -> None:
        self._writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="codex-record")
        self._file: BinaryIO | None = None
        self._path = ""

    def load(self, loader: Loader) -> None:
        loader.add_option("codex_record", str, "", "Append every upstream leg (credentials redacted) to this mitmproxy flow file.")

    def configure(self, updated: set[str]) -> None:
        path = ctx.options.codex_record
        if "codex_record" not in updated or path == self._path:
            return
        try:
            opened = Path(path).expanduser().open("ab") if path else None
        except OSError as exc:
            raise exceptions.OptionsError(f"codex_record: {exc}") from None
        self._close()
        self._file, self._path = opened, path

    @staticmethod
    def _write(file: BinaryIO, flow: http.HTTPFlow) -> None:
        io.FlowWriter(file).add(flow)
        file.flush()

    def response(self, flow: http.HTTPFlow) -> None:
        if self._file is not None and is_leg(flow):
            self._writer.submit(self._write, self._file, flow.copy())  # a snapshot: the leg as it is now

    def error(self, flow: http.HTTPFlow) -> None:
        self.response(flow)

    def _close(self) -> None:
        if self._file is not None:
            self._writer.submit(self._file.close)  # after the writes queued before it
            self._file, self._path = None, ""

    def done(self) -> None:
        self._close()
        self._writer.shutdown(wait=True)
