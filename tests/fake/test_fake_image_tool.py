"""The fake backend's hosted image_generation tool (codex-protocol.md §3.5): offered and not
scripted otherwise, the model uses it; its options are checked as the backend checks them; free
plans lose it and get text."""

from __future__ import annotations

from typing import Any

import pytest

from codex_fake import FakeCodexThread
from tests.fake.test_fake_backend import auth, base, body, fake, post, stream, types  # noqa: F401


@pytest.fixture(autouse=True)
def _fresh(fake: FakeCodexThread) -> None:  # noqa: F811
    fake.reset()


def image_tool(**options: Any) -> dict[str, Any]:
    return {"type": "image_generation", "output_format": "png", **options}


def test_an_offered_image_tool_makes_an_image(base: str) -> None:  # noqa: F811
    _, events = stream(base, body("draw a boat", tools=[image_tool(size="1536x1024", partial_images=1)]))
    names = types(events)
    assert names.index("response.image_generation_call.partial_image") < names.index("response.output_item.done")
    item = next(e["item"] for n, e in events if n == "response.output_item.done")
    assert item["type"] == "image_generation_call" and item["result"] and item["revised_prompt"] == "draw a boat"
    final = events[-1][1]["response"]
    assert final["tools"] == [{"type": "image_generation", "output_format": "png", "size": "auto", "partial_images": 1, "quality": "auto"}]
    assert final["tool_usage"]["image_gen"]["total_tokens"] > 0


@pytest.mark.parametrize(("tool", "message"), [
    (image_tool(n=2), "Unknown parameter: 'tools[0].n'."),
    (image_tool(output_format="gif"), "Invalid value: 'gif'."),
    (image_tool(partial_images=4), "Expected a value <= 3."),
])  # fmt: skip
def test_image_tool_options_are_checked(base: str, tool: dict[str, Any], message: str) -> None:  # noqa: F811
    response = post(base, body("x", tools=[tool]))
    assert response.status_code == 400 and message in response.json()["error"]["message"]


def test_free_plans_have_no_image_tool(base: str) -> None:  # noqa: F811
    _, events = stream(base, body("draw a boat", tools=[image_tool()], model="gpt-5.5"), auth(plan="free"))
    assert "image_generation_call" not in str(events) and "response.output_text.delta" in types(events)
    assert events[-1][1]["response"]["tools"] == []
