"""Responses a client may continue with ``previous_response_id``.

The backend keeps nothing (``store`` is always false): a response can be continued on the
WebSocket that produced it, and nowhere else. So every completed Responses turn that the client
did not mark ``store: false`` leaves a link here: its own input items, its output items, the
account and conversation that served it, and the link it continued. A continuation goes to the
socket that holds the response when it is still open; otherwise the history is rebuilt from the
links and sent in full. Links share what came before them (each holds only its own turn), and the
oldest are forgotten past a memory budget.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

CHAIN_BUDGET_BYTES = 64 * 1024 * 1024  # serialized size of the links kept
MAX_DEPTH = 10_000  # a history longer than this many turns is not rebuilt


@dataclass(frozen=True, slots=True)
class Link:
    response_id: str
    parent: str | None  # the response this one continued
    input: list[Any]  # this turn's own input items (not the history before them)
    output: list[Any]  # its output items, as the backend sent them
    account_id: str
    conversation_key: str | None
    size: int
    at: float


class ChainStore:
    def __init__(self, budget: int = CHAIN_BUDGET_BYTES) -> None:
        self._links: OrderedDict[str, Link] = OrderedDict()
        self._budget = budget
        self._size = 0

    def __len__(self) -> int:
        return len(self._links)

    def get(self, response_id: str) -> Link | None:
        link = self._links.get(response_id)
        if link is not None:
            self._links.move_to_end(response_id)
        return link

    def record(self, response_id: str, parent: str | None, items: list[Any], output: list[Any], account_id: str,
               conversation_key: str | None) -> None:
        size = len(orjson.dumps(items)) + len(orjson.dumps(output))
        old = self._links.pop(response_id, None)
        if old is not None:
            self._size -= old.size
        self._links[response_id] = Link(response_id, parent, list(items), list(output), account_id, conversation_key,
                                        size, time.time())
        self._size += size
        while self._size > self._budget and len(self._links) > 1:
            _, dropped = self._links.popitem(last=False)
            self._size -= dropped.size

    def history(self, response_id: str) -> list[Any] | None:
        """Every item of the conversation up to and including ``response_id``'s output, oldest
        first; None when a link on the way has been forgotten."""
        parts: list[Link] = []
        current: str | None = response_id
        while current is not None:
            link = self._links.get(current)
            if link is None or len(parts) >= MAX_DEPTH:
                return None
            parts.append(link)
            current = link.parent
        items: list[Any] = []
        for link in reversed(parts):
            items.extend(link.input)
            items.extend(item for item in link.output if _replayable(item))
        return items


def _replayable(item: Any) -> bool:
    """Reasoning goes back only with its encrypted content: the backend keeps nothing to look an
    id up by."""
    return isinstance(item, dict) and (item.get("type") != "reasoning" or bool(item.get("encrypted_content")))
