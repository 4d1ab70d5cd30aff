"""``/v1/images/*`` and ``/v1/embeddings`` through the real proxy with the openai SDK: images from
the Codex backend's image_generation tool (and from a provider that has images), embeddings only
from providers, and a clear answer when none has them."""

from __future__ import annotations

import base64
import struct
from typing import Any

import httpx
import openai
import pytest
from openai.types import CreateEmbeddingResponse, ImagesResponse

from codex_fake import FakeCodexThread
from codex_fake.scenarios import TINY_PNG_B64
from tests.support.providers import Fakes, clear_providers, set_routes, standard_providers
from tests.support.proxy import ProxyProcess

PNG = base64.b64decode(TINY_PNG_B64)


def client_of(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key=proxy.key, max_retries=0, timeout=30)


def last_turn(fake: FakeCodexThread) -> dict[str, Any]:
    return fake.requests("/codex/responses")[-1]["body"]


# --- images through the Codex backend ---------------------------------------------------------------------


def test_images_generate_returns_b64_json_as_the_sdk_expects(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    result = client_of(proxy).images.generate(model="gpt-image-2", prompt="a red fox in the snow", size="1024x1536", output_format="webp",
                                              output_compression=80, background="opaque", quality="high")  # fmt: skip
    assert base64.b64decode(result.data[0].b64_json) == PNG and result.data[0].revised_prompt == "a red fox in the snow"
    assert result.output_format == "webp" and result.background == "opaque" and result.created > 0
    assert result.usage is not None and result.usage.input_tokens == 50 and result.usage.input_tokens_details.text_tokens == 50
    ImagesResponse.model_validate(result.model_dump(exclude_unset=True))  # the SDK's own type, strictly
    body = last_turn(fake)
    assert body["model"] == "gpt-5.4" and body["instructions"] == ""
    assert body["input"] == [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a red fox in the snow"}]}]
    assert body["tools"] == [{"type": "image_generation", "size": "1024x1536", "output_format": "webp", "output_compression": 80,
                              "background": "opaque"}]  # fmt: skip
    row = proxy.request_log("path = ? AND requested_model = ?", "/v1/images/generations", "gpt-image-2")[-1]
    assert row["protocol"] == "images" and row["model"] == "gpt-5.4" and row["status"] == 200 and row["account_id"]


def test_images_stream_partial_and_completed_events(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    events = list(client_of(proxy).images.generate(prompt="a lighthouse", stream=True, partial_images=1))
    assert [e.type for e in events] == ["image_generation.partial_image", "image_generation.completed"]
    assert base64.b64decode(events[-1].b64_json) == PNG and events[-1].usage.total_tokens == 1106
    assert last_turn(fake)["tools"][0]["partial_images"] == 1


def test_images_edit_sends_the_image_to_the_backend(proxy: ProxyProcess, fake: FakeCodexThread, tmp_path: Any) -> None:
    picture = tmp_path / "cat.png"
    picture.write_bytes(PNG)
    with picture.open("rb") as handle:
        result = client_of(proxy).images.edit(image=handle, prompt="give it a hat", model="gpt-image-2")
    assert base64.b64decode(result.data[0].b64_json) == PNG
    content = last_turn(fake)["input"][0]["content"]
    assert content[0] == {"type": "input_text", "text": "give it a hat"}
    assert content[1] == {"type": "input_image", "image_url": "data:image/png;base64," + TINY_PNG_B64}


@pytest.mark.parametrize(("body", "message"), [
    ({"prompt": "x", "n": 2}, "'n' must be 1"),
    ({"prompt": "x", "response_format": "url"}, "must be b64_json"),
    ({"prompt": "x", "size": "999x999"}, "'size' must be one of"),
    ({"prompt": "x", "output_compression": 50}, "jpeg and webp only"),
    ({"prompt": "x", "background": "transparent"}, "not available through the Codex backend"),
    ({"prompt": ""}, "'prompt' is required"),
])  # fmt: skip
def test_image_requests_the_backend_cannot_honour_are_refused(proxy: ProxyProcess, body: dict[str, Any], message: str) -> None:
    response = httpx.post(proxy.base_url + "/images/generations", json=body, headers={"Authorization": f"Bearer {proxy.key}"}, timeout=30)
    assert response.status_code == 400 and message in response.json()["error"]["message"]


def test_no_image_from_the_backend_is_a_clear_502(proxy: ProxyProcess, fake: FakeCodexThread) -> None:
    fake.script({"text": "<svg>I drew it in text</svg>"})
    with pytest.raises(openai.APIStatusError) as caught:
        client_of(proxy).images.generate(prompt="a cat")
    assert caught.value.status_code == 502 and "no image_generation_call.result" in caught.value.message
    assert "<svg>" in caught.value.message


# --- through providers --------------------------------------------------------------------------------------


def test_images_from_a_provider_that_has_the_model(proxy: ProxyProcess, provider_fakes: Fakes, tmp_path: Any) -> None:
    standard_providers(proxy, provider_fakes)
    result = client_of(proxy).images.generate(model="gpt-image-1", prompt="a teapot")
    assert result.data[0].b64_json and result.quality == "medium"
    sent = provider_fakes.openai.requests("/images/generations")[-1]
    assert sent["body"]["prompt"] == "a teapot" and sent["key"] == "sk-proj-test-openai-0001"
    picture = tmp_path / "pot.png"
    picture.write_bytes(PNG)
    with picture.open("rb") as handle:
        client_of(proxy).images.edit(image=handle, prompt="make it blue", model="gpt-image-1")
    edit = provider_fakes.openai.requests("/images/edits")[-1]["body"]
    assert edit["prompt"] == "make it blue" and edit["model"] == "gpt-image-1" and edit["_files"] == ["image"]


def test_embeddings_from_openai_compatible_and_gemini_providers(proxy: ProxyProcess, provider_fakes: Fakes) -> None:
    standard_providers(proxy, provider_fakes)
    client = client_of(proxy)
    openai_answer = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    assert [len(d.embedding) for d in openai_answer.data] == [1536, 1536] and openai_answer.usage.prompt_tokens > 0
    CreateEmbeddingResponse.model_validate(openai_answer.model_dump())
    gemini_answer = client.embeddings.create(model="gemini-embedding-001", input="alpha", dimensions=16)
    assert len(gemini_answer.data[0].embedding) == 16 and gemini_answer.model == "gemini-embedding-001"
    sent = provider_fakes.gemini.requests(":batchEmbedContents")[-1]["body"]
    assert sent == {"requests": [{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "alpha"}]}, "outputDimensionality": 16}]}
    raw = httpx.post(proxy.base_url + "/embeddings", headers={"Authorization": f"Bearer {proxy.key}"}, timeout=30,
                     json={"model": "gemini-embedding-001", "input": "alpha", "dimensions": 4, "encoding_format": "base64"}).json()  # fmt: skip
    decoded = struct.unpack("<4f", base64.b64decode(raw["data"][0]["embedding"]))
    assert decoded == pytest.approx(gemini_answer.data[0].embedding[:4], abs=1e-6)
    assert proxy.request_log("path = ? AND provider = ?", "/v1/embeddings", "gemini")


def test_embeddings_without_a_provider_say_why(proxy: ProxyProcess, provider_fakes: Fakes) -> None:
    clear_providers(proxy)
    with pytest.raises(openai.NotFoundError) as caught:
        client_of(proxy).embeddings.create(model="text-embedding-3-small", input="x")
    assert "The ChatGPT (Codex) backend has no embedding models" in caught.value.message
    assert caught.value.body["code"] == "model_not_found"
    standard_providers(proxy, provider_fakes)
    set_routes(proxy, {"pattern": "text-embedding-3-small", "targets": ["anthropic"]})  # a provider without embeddings
    with pytest.raises(openai.NotFoundError, match="No provider serves embeddings"):
        client_of(proxy).embeddings.create(model="text-embedding-3-small", input="x")
