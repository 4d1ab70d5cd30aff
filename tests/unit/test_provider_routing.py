"""Model routing (routes, provider/model names, provider model lists, the pool's own names and its
name families), the registry on a real SQLite file, key rotation, error classification, and the
Gemini embeddings translation."""

from __future__ import annotations

import base64
import struct
import time
from pathlib import Path

import orjson
import pytest

from core.codex.catalog import ModelCatalog
from core.codex.errors import UpstreamError
from core.config import ConfigStore
from core.providers import embeddings, errors
from core.providers.keys import KEY_RATE_LIMITED, KEY_REFUSED, KeyRing
from core.providers.model import Provider, ProviderKey, ProviderModel, Route, Target, mask_key
from core.providers.registry import ProviderInputError, ProviderRegistry
from core.providers.routing import RoutingTable
from core.store.db import Database
from core.store.providers import ProviderStore


def provider(pid: str, models: tuple[str, ...] = (), enabled: bool = True, position: int = 0, wire: str = "chat") -> Provider:
    return Provider(pid, "custom", pid.title(), f"http://{pid}.test/v1", wire, enabled, manual_models=list(models), position=position)


@pytest.fixture
def catalog(tmp_path: Path) -> ModelCatalog:
    return ModelCatalog.from_config(ConfigStore(tmp_path, environ={}).current)


def routed(catalog: ModelCatalog, table: RoutingTable) -> ModelCatalog:
    catalog.router = table
    return catalog


# --- resolution order -----------------------------------------------------------------------------------


def test_routes_then_pool_names_then_provider_lists_then_pool_families(catalog: ModelCatalog) -> None:
    table = RoutingTable([provider("one", ("llama-3", "gpt-5.4", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5")), provider("two", ("llama-3", "mistral"), position=1)],
                         [Route("fast-*", (Target("two", "mistral"), Target("chatgpt"))), Route("gpt-5.4-mini", (Target("one"),))])  # fmt: skip
    cat = routed(catalog, table)
    assert cat.resolve("fast-lane").route == "fast-lane" and table.match("fast-lane").targets[0] == Target("two", "mistral")  # type: ignore[union-attr]
    assert cat.resolve("gpt-5.4-mini").route == "gpt-5.4-mini"  # an explicit route beats the pool's own id
    assert cat.resolve("gpt-5.4").route is None and cat.resolve("gpt-5.4").id == "gpt-5.4"  # the pool's id beats a provider list
    assert cat.resolve("llama-3").route == "llama-3" and table.match("llama-3").targets == (Target("one"),)  # type: ignore[union-attr]
    assert cat.resolve("claude-sonnet-4-5-20250929").route is not None  # a listed name beats the pool's family alias
    assert cat.resolve("claude-sonnet-4-5").route is None  # but not an alias the pool names outright
    assert cat.resolve("claude-opus-4-9").route is None and cat.resolve("claude-opus-4-9").id == "gpt-5.5"
    suffixed = cat.resolve("mistral-high")  # a listed name takes the pool's effort suffixes too
    assert suffixed.route == "mistral" and suffixed.effort == "high" and suffixed.display == "mistral-high"
    qualified = cat.resolve("two/mistral-high")  # "<provider>/<model>" goes as it is
    assert qualified.route == "two/mistral-high" and qualified.effort is None
    assert table.match("two/mistral-high").targets == (Target("two", "mistral-high"),)  # type: ignore[union-attr]
    assert cat.resolve("nobody/else").route is None


def test_pool_only_routes_rename_within_the_pool_and_disabled_providers_drop_out(catalog: ModelCatalog) -> None:
    table = RoutingTable([provider("off", ("off-model",), enabled=False)],
                         [Route("house", (Target("chatgpt", "gpt-5.4-mini"),)), Route("gone", (Target("off"),)),
                          Route("pool-first", (Target("chatgpt", "gpt-5.5"), Target("off")))])  # fmt: skip
    cat = routed(catalog, table)
    house = cat.resolve("house")
    assert house.id == "gpt-5.4-mini" and house.route is None and house.admissible
    assert cat.resolve("off-model").route is None and cat.resolve("gone").route is None
    assert cat.resolve("pool-first").id == "gpt-5.5" and cat.resolve("pool-first").route is None  # its provider is disabled
    assert "off-model" not in [m.id for m in cat.listing()]


def test_listing_and_capabilities() -> None:
    gem = Provider("gem", "gemini", "Gem", "http://g", "gemini", fetched_models=[ProviderModel("gemini-embedding-001", embeddings=True)])
    ant = Provider("ant", "anthropic", "Ant", "http://a", "anthropic", manual_models=["claude-x"], position=1)
    table = RoutingTable([gem, ant], [Route("embed-*", (Target("ant"), Target("gem", "gemini-embedding-001"))),
                                      Route("exact-name", (Target("ant", "claude-x"),))])  # fmt: skip
    assert [m.id for m in table.models()] == ["gemini-embedding-001", "claude-x", "exact-name"]
    assert [(p.id, m) for p, m in table.capable("embed-small", "embeddings")] == [("gem", "gemini-embedding-001")]
    assert table.capable("claude-x", "embeddings") == [] and table.capable("unknown", "images") == []


# --- the registry on SQLite -------------------------------------------------------------------------------


def test_registry_changes_persist_and_keys_stay_secret(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite")
    registry = ProviderRegistry(ProviderStore(db), lambda: 60)
    added = registry.add({"kind": "openrouter", "keys": ["sk-or-v1-aaaaaaaaaaaa1111", {"key": "sk-or-v1-bbbbbbbbbbbb2222", "label": "b"}]})
    assert (added.id, added.base_url, added.wire) == ("openrouter", "https://openrouter.ai/api/v1", "chat")
    assert registry.add({"kind": "openrouter"}).id == "openrouter-2"
    with pytest.raises(ProviderInputError, match="exists already"):
        registry.add({"id": "openrouter", "kind": "openrouter"})
    registry.set_routes([{"pattern": "x-*", "targets": ["openrouter:meta/llama", "chatgpt"]}])
    registry.keys.record(added.keys[0], KEY_REFUSED, "revoked")
    registry.states.flush()
    public = orjson.dumps(added.public())
    assert b"aaaaaaaaaaaa" not in public and b"bbbbbbbbbbbb" not in public

    again = ProviderRegistry(ProviderStore(Database(tmp_path / "db.sqlite")), lambda: 60)
    loaded = again.get("openrouter")
    assert loaded is not None and [k.key for k in loaded.keys] == ["sk-or-v1-aaaaaaaaaaaa1111", "sk-or-v1-bbbbbbbbbbbb2222"]
    assert loaded.keys[0].status == "invalid" and loaded.keys[0].last_error == "revoked"
    assert again.routes == [Route("x-*", (Target("openrouter", "meta/llama"), Target("chatgpt")))]
    again.delete("openrouter")
    assert again.routes == [Route("x-*", (Target("chatgpt"),))]  # the route lost the provider, kept the pool
    exported = again.export()
    assert [p["id"] for p in exported["providers"]] == ["openrouter-2"]


def test_update_rules(tmp_path: Path) -> None:
    registry = ProviderRegistry(ProviderStore(Database(tmp_path / "db.sqlite")), lambda: 60)
    registry.add({"id": "mine", "kind": "custom", "base_url": "http://localhost:8000/v1/", "keys": ["local-key-123456789"]})
    registry.set_models("mine", [ProviderModel("qwen")], None)
    assert registry.get("mine").base_url == "http://localhost:8000/v1"  # type: ignore[union-attr]
    moved = registry.update("mine", {"base_url": "http://other:9000/v1"})
    assert moved.fetched_models == [] and moved.models_fetched_at is None  # another server: its list is unknown
    with pytest.raises(ProviderInputError, match="cannot change kind"):
        registry.update("mine", {"kind": "openai"})
    key = registry.get("mine").keys[0]  # type: ignore[union-attr]
    with pytest.raises(ProviderInputError):
        registry.update_key("mine", key.id, {"status": "invalid"})
    assert registry.update_key("mine", key.id, {"status": "disabled", "label": "laptop"}).label == "laptop"
    with pytest.raises(KeyError):
        registry.delete_key("mine", "key_nope")


# --- keys ------------------------------------------------------------------------------------------------------


def test_keys_rotate_rest_and_get_refused() -> None:
    persisted: list[str] = []
    ring = KeyRing(lambda key: persisted.append(key.id), lambda: 30)
    p = provider("p")
    p.keys = [ProviderKey(f"k{i}", "p", f"secret-{i}-xxxxxxxxxx", added_at=i) for i in range(3)]
    order = [ring.choose(p, set()).id for _ in range(4)]  # type: ignore[union-attr]
    assert order == ["k0", "k1", "k2", "k0"]
    ring.record(p.keys[1], KEY_RATE_LIMITED, "slow", retry_after=None)
    assert 25 < (p.keys[1].cooldown_until or 0) - time.time() <= 30
    ring.record(p.keys[2], KEY_REFUSED, "revoked")
    assert [k.id for k in ring.usable(p)] == ["k0"] and ring.choose(p, {"k0"}) is None
    assert ring.soonest_back(p) == p.keys[1].cooldown_until and persisted.count("k1") == 2


def test_masks_reveal_no_short_key() -> None:
    assert mask_key("sk-proj-abcdefghijklmnop1234") == "sk-pro…1234"
    assert mask_key("AIzaSyABCDEFGHIJKLMNOP") == "AIz…MNOP"
    assert mask_key("short-key-12") == "••••••••"


# --- errors -------------------------------------------------------------------------------------------------


def test_provider_errors_say_what_happens_to_the_key() -> None:
    p = provider("p")
    limited = errors.classify(p, 429, {}, b'{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"quota",'
                                          b'"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"7s"}]}}')  # fmt: skip
    assert (limited.account_effect, limited.retry_after) == ("rate_limited", 7.0)
    gemini_bad_key = errors.classify(p, 400, {}, b'{"error":{"code":400,"message":"API key not valid.","details":[{"reason":"API_KEY_INVALID"}]}}')
    assert gemini_bad_key.account_effect == "refused" and errors.for_client(gemini_bad_key).status == 502
    overloaded = errors.classify(p, 529, {}, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')
    assert overloaded.status == 503 and overloaded.account_effect is None and errors.fails_over(overloaded)
    bad = errors.classify(p, 400, {}, b'{"error":{"message":"Unsupported value: \'temperature\' does not support 0.2"}}')
    assert not errors.fails_over(bad) and errors.refused_group(bad, set()) == "sampling" and errors.refused_group(bad, {"sampling"}) is None
    assert errors.fails_over(errors.classify(p, 404, {}, b'{"error":{"message":"no such model"}}'))
    assert errors.no_key_error(p, None).status == 503 and errors.no_key_error(p, time.time() + 5).status == 429
    assert isinstance(limited, UpstreamError) and limited.message.startswith("P: ")


# --- embeddings on Gemini ------------------------------------------------------------------------------------


def test_gemini_embeddings_translation() -> None:
    gem = Provider("g", "gemini", "G", "http://g", "gemini")
    body = embeddings.check({"model": "g/e", "input": ["a", "bb"], "dimensions": 3, "encoding_format": "base64"})
    path, payload = embeddings.request_for(gem, body, "text-embedding-004")
    assert path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert orjson.loads(payload)["requests"][1] == {"model": "models/text-embedding-004", "content": {"parts": [{"text": "bb"}]},
                                                   "outputDimensionality": 3}  # fmt: skip
    answer = orjson.loads(embeddings.openai_answer(gem, body, "text-embedding-004", orjson.dumps({"embeddings": [{"values": [0.5, -1.0, 2.0]}]})))
    assert answer["model"] == "g/e" and answer["object"] == "list" and answer["usage"]["prompt_tokens"] == 2
    assert struct.unpack("<3f", base64.b64decode(answer["data"][0]["embedding"])) == (0.5, -1.0, 2.0)
    with pytest.raises(Exception, match="non-empty string or array of strings"):
        embeddings.request_for(gem, {"model": "x", "input": [[1, 2, 3]]}, "x")
    openai_like = Provider("o", "openai", "O", "http://o", "chat")
    assert orjson.loads(embeddings.request_for(openai_like, {"model": "alias", "input": [[1, 2]]}, "real")[1]) == {"model": "real", "input": [[1, 2]]}
