"""What a routed request becomes for the bridge: a ``Job`` (a turn to run, or a plain call), and
the protocol translation that makes one."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from core.access.keys import ClientKey
from core.codex.events import Usage
from core.protocols.base import BadRequest, ClientError, ClientRequest, Reply, random_id
from core.services import Services
from core.turn.model import Prepared
from core.upstream.tap import Tap

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Called:
    """What a plain call job (``Job.call``: embeddings, images through a provider) answered."""

    reply: Reply
    provider: str | None = None  # the provider that answered
    usage: Usage | None = None


@dataclass(slots=True)
class Job:
    """A translated request waiting for the bridge to run it upstream."""

    protocol: ModuleType  # the protocol module that renders the answer
    prepared: Prepared
    path: str
    request_id: str = field(default_factory=lambda: random_id("req_", 8))
    compact: bool = False
    received_at: float = field(default_factory=time.time)
    annotate: Callable[[dict[str, Any]], None] | None = None  # host hook: show the outcome on the flow
    extra_headers: dict[str, str] = field(default_factory=dict)  # added to the answer (e.g. CORS)
    tap: Tap | None = None  # host hook: watch the upstream calls made for this job
    body: bytes = b""  # the client's request body, for logs.capture_bodies
    call: Callable[[], Awaitable[Called]] | None = None  # a plain call instead of a turn (raises UpstreamError)
    client_key: ClientKey | None = None  # whose limits apply (None: the proxy key, or no key needed)


def translate(protocol: ModuleType, parse: Callable[..., Prepared], request: ClientRequest, services: Services) -> Prepared | Reply:
    """Run a protocol's request parser; refusals come back as that protocol's error reply."""
    try:
        return parse(request, services.catalog, services.cfg)
    except ClientError as error:
        return protocol.render_error(error)
    except Exception as exc:  # a translator bug on odd input is still the client's 400, never a 500
        logger.warning("could not translate %s %s", request.method, request.path, exc_info=True)
        return protocol.render_error(BadRequest(f"Invalid request: {type(exc).__name__}: {exc}", code="invalid_request"))
