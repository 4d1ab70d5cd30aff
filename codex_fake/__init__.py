"""Offline fake of the ChatGPT Codex backend and its OAuth server, for the tests, the benchmark
and demo mode."""

from codex_fake import faults, scenarios
from codex_fake.backend import FakeCodex
from codex_fake.threaded import FakeCodexThread
from codex_fake.tokens import mint_access_token, mint_id_token, mint_refresh_token

__all__ = [
    "FakeCodex",
    "FakeCodexThread",
    "mint_access_token",
    "mint_id_token",
    "mint_refresh_token",
    "faults",
    "scenarios",
]
