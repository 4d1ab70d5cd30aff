"""The Codex backend's wire format: SSE framing, events, errors, request bodies and headers."""
