"""What the route modules need from the backend that hosts them.

backend.py builds the app from oauth.py and ws.py; they in turn call back into the backend
(authenticate, record, build a turn). They see it through the ``Host`` protocol below, which
``FakeCodex`` satisfies, so none of them imports backend.py.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from codex_fake.state import FakeState
from codex_fake.turn import Turn


class Caller:
    """The authenticated account behind a request."""

    __slots__ = ("account", "plan", "user_id", "email")

    def __init__(self, account: str, plan: str, user_id: str | None, email: str | None) -> None:
        self.account = account
        self.plan = plan
        self.user_id = user_id
        self.email = email


class Host(Protocol):
    state: FakeState
    base_url: str | None

    def authenticate(self, request: web.Request) -> Caller: ...

    def record(
        self, request: web.Request, raw: bytes, body: Any, account: str | None, method: str | None = None
    ) -> dict[str, Any] | None: ...

    def pick_scenario(self, caller: Caller, websocket: bool = False) -> dict[str, Any] | None: ...

    def build_turn(self, body: dict[str, Any], checked: Any, caller: Caller, scenario: dict[str, Any] | None,
                   previous_response_id: str | None = None) -> Turn: ...  # fmt: skip

    def set_cloudflare_cookies(self, resp: web.StreamResponse, caller: Caller, request: web.Request) -> None: ...
