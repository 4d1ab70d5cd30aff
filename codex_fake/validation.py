"""The backend's request checks, with its exact error bodies.

Each rule raises :class:`ApiError`; the HTTP layer turns it into a response and the WebSocket
layer into an ``{"type":"error","status":...}`` frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from codex_fake.catalog import ModelInfo, catalog
from codex_fake.tokens import blob_account

# The only top-level fields POST /codex/responses accepts (others: 400); WS frames may also carry these two.
RESPONSES_FIELDS = frozenset(
    {
        "model", "instructions", "input", "stream", "store", "tools", "tool_choice",
        "parallel_tool_calls", "reasoning", "include", "prompt_cache_key", "text", "service_tier",
        "client_metadata",
    }
)  # fmt: skip
WS_EXTRA_FIELDS = frozenset({"type", "previous_response_id"})
COMPACT_FIELDS = frozenset({"model", "input", "instructions", "tools", "parallel_tool_calls", "reasoning", "text"})
SERVICE_TIERS = frozenset({"priority", "flex"})
CALL_TYPES = {"function_call": "function_call_output", "custom_tool_call": "custom_tool_call_output"}


class ApiError(Exception):
    """A non-2xx answer: status, JSON (or text) body and extra headers."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}

    def error_object(self) -> dict[str, Any]:
        """The OpenAI-style ``error`` object a WS error frame carries."""
        body = self.body
        if isinstance(body, dict):
            if isinstance(body.get("error"), dict):
                return body["error"]
            if "detail" in body:
                return {"type": "invalid_request_error", "code": None, "message": str(body["detail"]), "param": None}
            return body
        return {"type": "error", "code": None, "message": str(body), "param": None}


def detail(status: int, message: str) -> ApiError:
    return ApiError(status, {"detail": message})


def invalid_request(message: str, code: str | None = None, param: str | None = None) -> ApiError:
    return ApiError(400, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}})


def model_not_supported(model: Any) -> ApiError:
    return detail(400, f"The '{model}' model is not supported when using Codex with a ChatGPT account.")


@dataclass(slots=True)
class CheckedRequest:
    """What validation learned about a good request."""

    model: ModelInfo
    input: list[Any]
    user_text: str | None
    input_tokens: int
    notes: list[str] = field(default_factory=list)
    tools: list[Any] = field(default_factory=list)  # as the backend echoes them (image tool normalised or dropped)
    image_tool: dict[str, Any] | None = None  # the image_generation tool the model may use


# The image_generation tool's options (codex-protocol.md §3.5): its size is echoed as "auto",
# "n" and the Images API's own fields are refused, and free plans lose the tool silently.
IMAGE_TOOL_FIELDS = frozenset({"type", "size", "output_format", "output_compression", "background", "moderation", "partial_images", "quality"})
IMAGE_TOOL_VALUES = {"output_format": ("png", "jpeg", "webp"), "background": ("auto", "opaque"), "moderation": ("auto", "low"),
                     "size": ("1024x1024", "1024x1536", "1536x1024", "2048x2048", "2048x3072", "3072x2048", "3840x2160", "2160x3840",
                              "2304x3072", "auto")}  # fmt: skip


def check_tools(tools: Any, plan: str) -> tuple[list[Any], dict[str, Any] | None]:
    if tools is None:
        return [], None
    if not isinstance(tools, list):
        raise invalid_request("Invalid type for 'tools': expected an array.", param="tools")
    kept: list[Any] = []
    image: dict[str, Any] | None = None
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "image_generation":
            kept.append(tool)
            continue
        for name, value in tool.items():
            if name not in IMAGE_TOOL_FIELDS:
                raise invalid_request(f"Unknown parameter: 'tools[{index}].{name}'.", code="unknown_parameter", param=f"tools[{index}].{name}")
            allowed = IMAGE_TOOL_VALUES.get(name)
            if allowed is not None and value not in allowed:
                supported = ", ".join(f"'{v}'" for v in allowed)
                raise invalid_request(f"Invalid value: '{value}'. Supported values are: {supported}.", code="invalid_value",
                                      param=f"tools[{index}].{name}")  # fmt: skip
        partial = tool.get("partial_images", 0)
        if not isinstance(partial, int) or not 0 <= partial <= 3:
            raise invalid_request("Invalid 'tools[0].partial_images': integer above maximum value. Expected a value <= 3.",
                                  code="integer_above_max_value", param=f"tools[{index}].partial_images")  # fmt: skip
        if plan == "free":
            continue  # free plans have no image generation: the tool is dropped, the model answers in text
        image = {**tool, "size": "auto", "quality": "auto"}
        kept.append(image)
    return kept, image


def message_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part.get("text")
            for part in content
            if isinstance(part, dict) and part.get("type") in ("input_text", "text", "output_text")
        ]
        joined = "\n".join(t for t in texts if isinstance(t, str))
        return joined or None
    return None


def last_user_text(items: list[Any]) -> str | None:
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user" and item.get("type", "message") == "message":
            text = message_text(item.get("content"))
            if text:
                return text
    return None


def check_model(model: Any, plan: str) -> ModelInfo:
    if not isinstance(model, str) or not model:
        raise detail(400, "Missing required parameter: 'model'.")
    info = catalog().get(model)
    if info is None or plan not in info.plans:
        raise model_not_supported(model)
    return info


def check_items(items: list[Any], account: str, system_role: str, notes: list[str]) -> None:
    """Item-level rules: system role, foreign encrypted content, every tool call answered."""
    pending: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict):
            raise invalid_request("Invalid input item: expected an object.", param="input")
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") == "system":
            if system_role == "reject":
                raise invalid_request("System messages are not allowed in input.", param="input")
            if "system_role_in_input" not in notes:
                notes.append("system_role_in_input")
        elif kind in ("reasoning", "compaction"):
            owner = blob_account(item.get("encrypted_content"))
            if owner is not None and owner != account:
                raise invalid_request(
                    f"The encrypted content for item {item.get('id') or kind} could not be verified.",
                    code="invalid_encrypted_content",
                )
        elif kind in CALL_TYPES:
            call_id = item.get("call_id")
            if isinstance(call_id, str):
                pending[call_id] = kind
        elif kind in ("function_call_output", "custom_tool_call_output"):
            pending.pop(item.get("call_id"), None)
    for call_id, kind in pending.items():
        noun = "function call" if kind == "function_call" else "custom tool call"
        raise invalid_request(f"No tool output found for {noun} {call_id}.", param="input")


def check_responses_body(
    body: Any,
    *,
    account: str,
    plan: str,
    websocket: bool = False,
    history: list[Any] | None = None,
    require_instructions: bool = False,
    system_role: str = "accept",
) -> CheckedRequest:
    """Every rule the backend applies to a responses turn (HTTP body or WS ``response.create`` frame)."""
    if not isinstance(body, dict):
        raise detail(400, "Request body must be a JSON object")
    stream = body.get("stream")
    if (stream is not True) if not websocket else ("stream" in body and stream is not True):
        raise detail(400, "Stream must be set to true")
    if body.get("store") is not False:
        raise detail(400, "Store must be set to false")
    allowed = RESPONSES_FIELDS | WS_EXTRA_FIELDS if websocket else RESPONSES_FIELDS
    for key in body:
        if key not in allowed:
            raise detail(400, f"Unsupported parameter: {key}")
    instructions = body.get("instructions")
    if require_instructions and not instructions:
        raise detail(400, "Instructions are required")
    info = check_model(body.get("model"), plan)
    items = body.get("input")
    if not isinstance(items, list):
        raise detail(400, "Input must be a list")
    tier = body.get("service_tier")
    if tier is not None and tier not in SERVICE_TIERS:
        raise detail(400, f"Unsupported service_tier: {tier}")
    reasoning = body.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, dict):
        raise invalid_request("Invalid type for 'reasoning': expected an object.", param="reasoning")
    effort = (reasoning or {}).get("effort")
    if effort is not None and effort not in info.efforts:
        supported = ", ".join(f"'{e}'" for e in sorted(info.efforts))
        raise invalid_request(
            f"Unsupported value: 'reasoning.effort' does not support '{effort}' with the '{info.slug}' model. "
            f"Supported values are: {supported}.",
            code="unsupported_value",
            param="reasoning.effort",
        )
    tools, image_tool = check_tools(body.get("tools"), plan)
    notes: list[str] = []
    full = (history or []) + items
    check_items(full, account, system_role, notes)
    size = len(orjson.dumps(full)) + (len(instructions) if isinstance(instructions, str) else 0)
    return CheckedRequest(info, items, last_user_text(full), max(1, size // 4), notes, tools, image_tool)


def check_compact_body(body: Any, *, account: str, plan: str) -> CheckedRequest:
    """``/codex/responses/compact``: no stream/store, a smaller allow-list, same model rules."""
    if not isinstance(body, dict):
        raise detail(400, "Request body must be a JSON object")
    for key in body:
        if key not in COMPACT_FIELDS:
            raise detail(400, f"Unsupported parameter: {key}")
    info = check_model(body.get("model"), plan)
    items = body.get("input")
    if not isinstance(items, list):
        raise detail(400, "Input must be a list")
    notes: list[str] = []
    check_items(items, account, "accept", notes)
    size = len(orjson.dumps(items))
    return CheckedRequest(info, items, last_user_text(items), max(1, size // 4), notes)
