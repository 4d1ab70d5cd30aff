"""The event generator: one scripted answer (a scenario, see codex_fake/scenarios.py) as the
Responses-stream event sequence the real backend sends; the transport (SSE or WebSocket) only
frames and paces what it yields."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from orjson import dumps

from codex_fake.scenarios import (
    DEFAULT_SUMMARY,
    DEFAULT_TEXT,
    TINY_PNG_B64,
    Disconnect,
    Pause,
    TurnKnobs,
    TurnRequest,
    bench_chunks,
    new_id,
    split_pieces,
    split_words,
    tokens_for,
)
from codex_fake.tokens import seal_blob


class Turn:
    """One scripted answer: error paths as attributes, the stream as :meth:`events`."""

    def __init__(self, req: TurnRequest, scenario: dict[str, Any] | None, knobs: TurnKnobs) -> None:
        sc = scenario or {}
        self.req = req
        self.sc = sc
        self.http_error: dict[str, Any] | None = sc.get("http_error")
        self.json_body: Any = sc.get("json_body")
        self.headers: dict[str, str] = {str(k): str(v) for k, v in (sc.get("headers") or {}).items()}
        self.ttfb = float(sc.get("ttfb_ms", knobs.ttfb_ms) or 0) / 1000
        self.ttft = float(sc.get("ttft_ms", knobs.ttft_ms) or 0) / 1000
        self.event_delay = float(sc.get("event_delay_ms", knobs.event_delay_ms) or 0) / 1000
        self.bench_events = knobs.events
        self.stamp_events = knobs.stamp_events
        self.output_items: list[dict[str, Any]] = []  # completed items, for WS history
        self.status = "in_progress"
        self.usage: dict[str, Any] | None = None
        self._seq = 0
        self._text_chars = 0
        self._reasoning_chars = 0
        self._tool_usage: dict[str, Any] = {}

    # -- response objects --------------------------------------------------------------------------

    def _response(self, status: str, **extra: Any) -> dict[str, Any]:
        r = self.req
        reasoning = r.reasoning or {}
        obj = {
            "id": r.response_id,
            "object": "response",
            "created_at": r.created_at,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "max_output_tokens": None,
            "model": r.model,
            "output": [],
            "parallel_tool_calls": r.parallel_tool_calls,
            "previous_response_id": r.previous_response_id,
            "prompt_cache_key": r.prompt_cache_key,
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "service_tier": r.service_tier or "auto",
            "store": False,
            "text": r.text_param or {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": r.tool_choice,
            "tools": r.tools,
            "usage": None,
            "metadata": {},
        }
        obj.update(extra)
        return obj

    def _final_usage(self) -> dict[str, Any]:
        r = self.req
        if self.sc.get("empty"):
            out_tokens = reasoning_tokens = 0
        else:
            reasoning_tokens = tokens_for(self._reasoning_chars)
            out_tokens = tokens_for(self._text_chars) + reasoning_tokens
        usage: dict[str, Any] = {
            "input_tokens": r.input_tokens,
            "input_tokens_details": {"cached_tokens": r.cached_tokens},
            "output_tokens": out_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": r.input_tokens + out_tokens,
        }
        override = self.sc.get("usage") or {}
        for key, value in override.items():
            if isinstance(value, dict) and isinstance(usage.get(key), dict):
                usage[key] = {**usage[key], **value}
            else:
                usage[key] = value
        if "total_tokens" not in override:
            usage["total_tokens"] = int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
        return usage

    # -- the stream --------------------------------------------------------------------------------

    def events(self) -> Iterator[dict[str, Any] | Pause | Disconnect]:
        """Events with sequence numbers, plus pacing/disconnect markers for the transport."""
        sc = self.sc
        disconnect_after = sc.get("disconnect_after")
        disconnect = Disconnect(str(sc.get("disconnect_mode") or "close"))
        fail = sc.get("fail")
        fail_after = int(sc.get("fail_after") or 0) if fail else None
        error_event = sc.get("error_event")
        error_after = sc.get("error_after") if error_event is not None else None
        sent = 0

        def stamp(event: dict[str, Any]) -> dict[str, Any]:
            event["sequence_number"] = self._seq
            self._seq += 1
            return event

        if error_event is not None and error_after is None:
            if disconnect_after == 0:
                yield disconnect
                return
            yield stamp(self._error_event(error_event))
            self.status = "error"
            return

        preamble = [
            {"type": "response.created", "sequence_number": 0, "response": self._response("in_progress")},
            {"type": "response.in_progress", "sequence_number": 0, "response": self._response("in_progress")},
        ]
        for event in preamble:
            if disconnect_after is not None and sent >= int(disconnect_after):
                yield disconnect
                return
            yield stamp(event)
            sent += 1
        if self.ttft:
            yield Pause(self.ttft)

        produced = 0
        for event in self._output_events():
            if fail_after is not None and produced >= fail_after:
                break
            if error_after is not None and produced >= int(error_after):
                break
            if disconnect_after is not None and sent >= int(disconnect_after):
                yield disconnect
                return
            yield stamp(event)
            sent += 1
            produced += 1

        if disconnect_after is not None and sent >= int(disconnect_after):
            yield disconnect
            return
        if error_event is not None:  # scripted with error_after: it wins over fail/complete
            yield stamp(self._error_event(error_event))
            self.status = "error"
            return
        if fail is not None:
            self.status = "failed"
            error = {"code": fail.get("code", "server_error"), "message": fail.get("message", "An error occurred.")}
            yield stamp(
                {
                    "type": "response.failed",
                    "sequence_number": 0,
                    "response": self._response("failed", error=error, usage=None),
                }
            )
            return
        self.usage = self._final_usage()
        output = list(self.output_items) if sc.get("completed_output") else []
        if sc.get("incomplete"):
            self.status = "incomplete"
            yield stamp(
                {
                    "type": "response.incomplete",
                    "sequence_number": 0,
                    "response": self._response(
                        "incomplete",
                        incomplete_details={"reason": sc["incomplete"]},
                        usage=self.usage,
                        output=output,
                    ),
                }
            )
            return
        self.status = "completed"
        extra: dict[str, Any] = {"usage": self.usage, "output": output}
        if self._tool_usage:
            extra["tool_usage"] = self._tool_usage
        yield stamp({"type": "response.completed", "sequence_number": 0, "response": self._response("completed", **extra)})

    @staticmethod
    def _error_event(error: dict[str, Any]) -> dict[str, Any]:
        event: dict[str, Any] = {"type": "error", "sequence_number": 0, "code": None, "message": "", "param": None}
        event.update(error)
        event["type"] = "error"
        return event

    def _plan_text(self) -> list[str] | None:
        """The answer's text deltas, or None when the scenario has no message item."""
        sc, r = self.sc, self.req
        if sc.get("empty"):
            return None
        text = sc.get("text")
        if text is not None:
            chunks = [str(c) for c in text] if isinstance(text, (list, tuple)) else split_words(str(text))
            return chunks or None
        if sc.get("tool_calls") or sc.get("custom_tool_calls") or sc.get("image"):
            return None
        if self.bench_events:
            return bench_chunks(int(self.bench_events))
        if r.user_text:
            return split_words(f"You said: {r.user_text[:200]}")
        return split_words(DEFAULT_TEXT)

    def _output_events(self) -> Iterator[dict[str, Any]]:
        sc = self.sc
        if sc.get("empty"):
            return
        index = 0
        reasoning = sc.get("reasoning")
        scripted_items = sc.get("tool_calls") or sc.get("custom_tool_calls") or sc.get("image")
        default_answer = sc.get("text") is None and not scripted_items
        if reasoning is None and default_answer and self.req.wants_summary:
            reasoning = DEFAULT_SUMMARY
        if reasoning is not None:
            yield from self._reasoning_item(index, str(reasoning))
            index += 1
        if sc.get("web_search"):
            yield from self._web_search_item(index, sc["web_search"])
            index += 1
        if sc.get("image"):
            yield from self._image_item(index, sc["image"] if isinstance(sc["image"], dict) else {})
            index += 1
        chunks = self._plan_text()
        if chunks is not None:
            yield from self._message_item(index, chunks, cite=bool(sc.get("web_search")))
            index += 1
        for call in sc.get("custom_tool_calls") or []:
            yield from self._custom_call_item(index, call)
            index += 1
        calls = sc.get("tool_calls") or []
        if calls:
            yield from self._function_calls(index, calls)

    def _reasoning_item(self, index: int, text: str) -> Iterator[dict[str, Any]]:
        item_id = new_id("rs")
        self._reasoning_chars += max(len(text), 64)
        yield {
            "type": "response.output_item.added",
            "sequence_number": 0,
            "output_index": index,
            "item": {"id": item_id, "type": "reasoning", "summary": []},
        }
        summary: list[dict[str, str]] = []
        if self.req.wants_summary and text:
            base = {"item_id": item_id, "output_index": index, "summary_index": 0}
            yield {
                "type": "response.reasoning_summary_part.added",
                "sequence_number": 0,
                **base,
                "part": {"type": "summary_text", "text": ""},
            }
            for delta in split_words(text):
                yield {"type": "response.reasoning_summary_text.delta", "sequence_number": 0, **base, "delta": delta}
            yield {"type": "response.reasoning_summary_text.done", "sequence_number": 0, **base, "text": text}
            part = {"type": "summary_text", "text": text}
            yield {"type": "response.reasoning_summary_part.done", "sequence_number": 0, **base, "part": part}
            summary = [part]
        item: dict[str, Any] = {"id": item_id, "type": "reasoning", "summary": summary}
        if self.req.include_encrypted:
            item["encrypted_content"] = seal_blob(self.req.account, "reasoning")
        self.output_items.append(item)
        yield {"type": "response.output_item.done", "sequence_number": 0, "output_index": index, "item": item}

    def _web_search_item(self, index: int, spec: Any) -> Iterator[dict[str, Any]]:
        item_id = new_id("ws")
        query = spec.get("query") if isinstance(spec, dict) else None
        query = query or (self.req.user_text or "fake search")[:100]
        yield {
            "type": "response.output_item.added",
            "sequence_number": 0,
            "output_index": index,
            "item": {"id": item_id, "type": "web_search_call", "status": "in_progress"},
        }
        for phase in ("in_progress", "searching", "completed"):
            yield {
                "type": f"response.web_search_call.{phase}",
                "sequence_number": 0,
                "item_id": item_id,
                "output_index": index,
            }
        item = {
            "id": item_id,
            "type": "web_search_call",
            "status": "completed",
            "action": {"type": "search", "query": query},
        }
        self.output_items.append(item)
        self._tool_usage["web_search"] = {"num_requests": 1}
        yield {"type": "response.output_item.done", "sequence_number": 0, "output_index": index, "item": item}

    def _image_item(self, index: int, spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
        item_id = new_id("ig")
        yield {
            "type": "response.output_item.added",
            "sequence_number": 0,
            "output_index": index,
            "item": {"id": item_id, "type": "image_generation_call", "status": "in_progress"},
        }
        base = {"item_id": item_id, "output_index": index}
        yield {"type": "response.image_generation_call.in_progress", "sequence_number": 0, **base}
        yield {"type": "response.image_generation_call.generating", "sequence_number": 0, **base}
        if spec.get("partial"):
            yield {
                "type": "response.image_generation_call.partial_image",
                "sequence_number": 0,
                **base,
                "partial_image_index": 0,
                "partial_image_b64": spec["partial"],
            }
        item = {
            "id": item_id,
            "type": "image_generation_call",
            "status": "completed",
            "background": "opaque",
            "output_format": spec.get("output_format", "png"),
            "quality": "auto",
            "size": spec.get("size", "1024x1024"),
            "result": spec.get("result") or TINY_PNG_B64,
            "revised_prompt": spec.get("revised_prompt") or (self.req.user_text or "an image"),
        }
        self.output_items.append(item)
        self._tool_usage["image_gen"] = {"input_tokens": 50, "output_tokens": 1056, "total_tokens": 1106}
        yield {"type": "response.output_item.done", "sequence_number": 0, "output_index": index, "item": item}

    def _message_item(self, index: int, chunks: list[str], cite: bool) -> Iterator[dict[str, Any]]:
        item_id = new_id("msg")
        base = {"item_id": item_id, "output_index": index, "content_index": 0}
        yield {
            "type": "response.output_item.added",
            "sequence_number": 0,
            "output_index": index,
            "item": {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []},
        }
        yield {
            "type": "response.content_part.added",
            "sequence_number": 0,
            **base,
            "part": {"type": "output_text", "text": "", "annotations": []},
        }
        for delta in chunks:
            yield {"type": "response.output_text.delta", "sequence_number": 0, **base, "delta": delta, "logprobs": []}
        text = "".join(chunks)
        self._text_chars += len(text)
        annotations: list[dict[str, Any]] = []
        if cite:
            annotation = {
                "type": "url_citation",
                "start_index": 0,
                "end_index": len(text),
                "url": "https://example.com/fake-search-result",
                "title": "Fake search result",
            }
            annotations.append(annotation)
            yield {
                "type": "response.output_text.annotation.added",
                "sequence_number": 0,
                **base,
                "annotation_index": 0,
                "annotation": annotation,
            }
        yield {"type": "response.output_text.done", "sequence_number": 0, **base, "text": text, "logprobs": []}
        part = {"type": "output_text", "text": text, "annotations": annotations}
        yield {"type": "response.content_part.done", "sequence_number": 0, **base, "part": part}
        status = "incomplete" if self.sc.get("incomplete") else "completed"
        item = {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": [part]}
        self.output_items.append(item)
        yield {"type": "response.output_item.done", "sequence_number": 0, "output_index": index, "item": item}

    def _custom_call_item(self, index: int, call: dict[str, Any]) -> Iterator[dict[str, Any]]:
        item_id = new_id("ctc")
        call_id = call.get("call_id") or new_id("call")
        name = call.get("name", "apply_patch")
        text = str(call.get("input", ""))
        self._text_chars += len(text)
        added = {
            "id": item_id,
            "type": "custom_tool_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": name,
            "input": "",
        }
        yield {"type": "response.output_item.added", "sequence_number": 0, "output_index": index, "item": added}
        base = {"item_id": item_id, "output_index": index}
        for delta in split_pieces(text):
            yield {"type": "response.custom_tool_call_input.delta", "sequence_number": 0, **base, "delta": delta}
        yield {"type": "response.custom_tool_call_input.done", "sequence_number": 0, **base, "input": text}
        item = {**added, "status": "completed", "input": text}
        self.output_items.append(item)
        yield {"type": "response.output_item.done", "sequence_number": 0, "output_index": index, "item": item}

    def _function_calls(self, first_index: int, calls: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """All items added first, then argument deltas interleaved (parallel calls stress indexing)."""
        plans = []
        for offset, call in enumerate(calls):
            args = call.get("arguments", "{}")
            args = args if isinstance(args, str) else dumps(args).decode()
            self._text_chars += len(args)
            added = {
                "id": new_id("fc"),
                "type": "function_call",
                "status": "in_progress",
                "call_id": call.get("call_id") or new_id("call"),
                "name": call.get("name", "tool"),
                "arguments": "",
            }
            plans.append((first_index + offset, added, args, split_pieces(args)))
        for index, added, _args, _pieces in plans:
            yield {"type": "response.output_item.added", "sequence_number": 0, "output_index": index, "item": added}
        longest = max(len(p[3]) for p in plans)
        for step in range(longest):
            for index, added, _args, pieces in plans:
                if step < len(pieces):
                    yield {
                        "type": "response.function_call_arguments.delta",
                        "sequence_number": 0,
                        "item_id": added["id"],
                        "output_index": index,
                        "delta": pieces[step],
                    }
        for index, added, args, _pieces in plans:
            yield {
                "type": "response.function_call_arguments.done",
                "sequence_number": 0,
                "item_id": added["id"],
                "output_index": index,
                "arguments": args,
            }
            item = {**added, "status": "completed", "arguments": args}
            self.output_items.append(item)
            yield {"type": "response.output_item.done", "sequence_number": 0, "output_index": index, "item": item}
