"""Complete bodies in mitmweb without unbounded memory.

Streamed answers only show in mitmweb (and in ``-w`` files) with ``store_streamed_bodies``, which is
turned on there unless the user set it. mitmweb keeps every flow for the whole session, and a coding
agent's turn carries its whole context, so bodies are kept within a byte budget
(``codex_body_budget``, default 256m): once finished flows' bodies exceed it, the oldest flows lose
their bodies (headers, comment and timings stay). ``view.clear`` in mitmweb frees everything.
"""

from __future__ import annotations

from collections import OrderedDict

from mitmproxy import ctx, exceptions, hooks, http
from mitmproxy.addonmanager import Loader
from mitmproxy.utils import human

DEFAULT_BUDGET = "256m"
DROPPED_NOTE = "bodies dropped (codex_body_budget)"


def body_size(flow: http.HTTPFlow) -> int:
    return sum(len(message.raw_content or b"") for message in (flow.request, flow.response) if message is not None)


class BodyBudget:
    def __init__(self) -> None:
        self.budget: int | None = None
        self._sizes: OrderedDict[str, int] = OrderedDict()  # finished flows, oldest first
        self.total = 0

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "codex_body_budget", str, DEFAULT_BUDGET,
            "Under mitmweb, keep request/response bodies of the newest flows up to this size (e.g. 64m, 1g); "
            "older flows lose their bodies. Empty: no limit.",
        )

    def configure(self, updated: set[str]) -> None:
        if "codex_body_budget" in updated:
            value = ctx.options.codex_body_budget.strip()
            try:
                self.budget = human.parse_size(value) if value else None
            except ValueError as exc:
                raise exceptions.OptionsError(f"codex_body_budget: {exc}") from None

    def running(self) -> None:
        options = ctx.options
        if not options.has_changed("store_streamed_bodies") and (ctx.master.addons.get("view") is not None or options.save_stream_file):
            options.update(store_streamed_bodies=True)

    def response(self, flow: http.HTTPFlow) -> None:
        view = ctx.master.addons.get("view")
        if view is None or self.budget is None:
            return
        size = body_size(flow)
        self.total += size - self._sizes.pop(flow.id, 0)  # a replayed flow is counted once
        self._sizes[flow.id] = size
        dropped = []
        while self.total > self.budget and len(self._sizes) > 1:  # the newest flow always keeps its bodies
            flow_id, size = self._sizes.popitem(last=False)
            self.total -= size
            old = view.get_by_id(flow_id)
            if old is not None:  # else the user removed it already
                old.request.raw_content = None
                if old.response is not None:
                    old.response.raw_content = None
                old.comment = f"{old.comment} · {DROPPED_NOTE}" if old.comment else DROPPED_NOTE
                dropped.append(old)
        if dropped:
            ctx.master.addons.trigger(hooks.UpdateHook(dropped))

    def error(self, flow: http.HTTPFlow) -> None:
        self.response(flow)
