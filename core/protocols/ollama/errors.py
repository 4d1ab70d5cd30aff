"""Ollama's error body: ``{"error": message}``."""

from __future__ import annotations

from typing import Any

from core.protocols.base import Failure, Reply, http_status, json_reply, retry_headers


def error_payload(error: Failure) -> dict[str, Any]:
    return {"error": error.message}


def render_error(error: Failure) -> Reply:
    return json_reply(http_status(error), error_payload(error), retry_headers(error))
