"""The contract every protocol translator follows (core/protocols/__init__.py, ``base.Translator``):
the same names and signatures, one delta dispatch, no pipeline imports, small modules."""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path
from types import ModuleType

import pytest

from core.codex.events import Delta
from core.protocols import anthropic, completions, gemini, ollama, openai_chat, responses
from core.protocols.base import (
    DELTA_HANDLERS,
    CollectedTurn,
    DeltaStream,
    TokenCounter,
    Translator,
)

PROTOCOLS = {"openai_chat": openai_chat, "completions": completions, "responses": responses, "anthropic": anthropic, "gemini": gemini, "ollama": ollama}
PACKAGE = Path(__file__).resolve().parents[2] / "core" / "protocols"


def parameters(function: typing.Callable[..., typing.Any]) -> list[str]:
    """Positional parameter names (keyword-only extras, such as Responses' ``compact``, aside)."""
    return [p.name for p in inspect.signature(function).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"]


@pytest.mark.parametrize("name", PROTOCOLS)
def test_same_names_and_signatures(name: str) -> None:
    module = PROTOCOLS[name]
    for function in ("parse_request", "render_response", "render_error"):
        assert parameters(getattr(module, function)) == parameters(getattr(Translator, function)), function
    translator = module.StreamTranslator
    assert parameters(translator.__init__) == ["context"]
    for method, expected in (("feed", ["event"]), ("keepalive", []), ("fail", ["error"])):
        assert parameters(getattr(translator, method)) == expected, method
    assert isinstance(translator.content_type, str)


@pytest.mark.parametrize("module", [anthropic, gemini])
def test_token_counting_has_one_signature(module: ModuleType) -> None:
    assert parameters(module.count_tokens) == parameters(TokenCounter.count_tokens) == ["request", "catalog", "cfg"]


def test_every_delta_type_has_a_handler_name() -> None:
    assert set(DELTA_HANDLERS) == set(typing.get_args(Delta))


def test_delta_streams_and_collected_turn_share_the_dispatch() -> None:
    delta_driven = [m.StreamTranslator for m in PROTOCOLS.values() if m is not responses]
    assert all(issubclass(cls, DeltaStream) for cls in delta_driven)
    handlers = set(DELTA_HANDLERS.values())
    for cls in [*delta_driven, CollectedTurn]:
        own = {name for name in vars(cls) if name.startswith("on_")}
        assert own <= handlers, f"{cls.__qualname__}: {own - handlers} would never be called"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_pure_and_small(path: Path) -> None:
    imported = _imports(path)
    assert not {m for m in imported if m.startswith(("core.turn.pipeline", "core.gateway", "core.hosts", "core.upstream"))}
    assert len(path.read_text().splitlines()) <= 500
