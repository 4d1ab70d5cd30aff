"""Offline fake of the ChatGPT Codex backend and its OAuth server (see codex-protocol.md §8)."""

from core.fake import scenarios
from core.fake.backend import FakeCodex
from core.fake.threaded import FakeCodexThread
from core.fake.tokens import mint_access_token, mint_id_token, mint_refresh_token

__all__ = [
    "FakeCodex",
    "FakeCodexThread",
    "mint_access_token",
    "mint_id_token",
    "mint_refresh_token",
    "scenarios",
]
