"""Model entries for ``GET models`` and ``GET models/{name}``."""

from __future__ import annotations

from typing import Any

from core.codex.catalog import ModelCatalog, ModelInfo, ResolvedModel

GENERATION_METHODS = ["generateContent", "streamGenerateContent", "countTokens"]


def model_entry(info: ModelInfo, name: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": f"models/{name or info.id}",
        "baseModelId": info.id,
        "version": info.id,
        "displayName": info.display_name if name in (None, info.id) else f"{name} (served by {info.id})",
        "description": info.description,
    }
    if info.context_window:
        entry["inputTokenLimit"] = info.context_window
    if info.max_output_tokens:
        entry["outputTokenLimit"] = info.max_output_tokens
    entry["supportedGenerationMethods"] = GENERATION_METHODS
    entry["thinking"] = bool(info.efforts)
    return entry


def resolved_entry(catalog: ModelCatalog, name: str) -> dict[str, Any]:
    """``GET models/{name}``: any name generateContent would serve, described by the model serving it."""
    model: ResolvedModel = catalog.resolve(name)
    info = catalog.get(model.id) or ModelInfo(id=model.id, display_name=model.id)
    return model_entry(info, name)
