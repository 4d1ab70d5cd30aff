"""What ``/api/tags``, ``/api/show`` and ``/api/ps`` say about the catalog's models."""

from __future__ import annotations

import hashlib
from typing import Any

from core.codex.catalog import ModelCatalog, ModelInfo, ResolvedModel

DEFAULT_CONTEXT = 131072


def digest(model_id: str) -> str:
    return hashlib.sha256(model_id.encode()).hexdigest()


def context_length(info: ModelInfo) -> int:
    return info.context_window or info.max_context_window or DEFAULT_CONTEXT


def details(info: ModelInfo) -> dict[str, Any]:
    family = info.id.split("-", 1)[0]
    return {"parent_model": "", "format": "codex", "family": family, "families": [family],
            "parameter_size": "unknown", "quantization_level": "unknown"}


def tags_payload(catalog: ModelCatalog, modified_at: str) -> dict[str, Any]:
    return {"models": [
        {"name": m.id, "model": m.id, "modified_at": modified_at, "size": 0, "digest": digest(m.id), "details": details(m)}
        for m in catalog.listing()
    ]}


def show_payload(catalog: ModelCatalog, name: str, model: ResolvedModel, modified_at: str, disable_vision: bool) -> dict[str, Any]:
    info = catalog.get(model.id) or ModelInfo(id=model.id, display_name=model.id)
    family = details(info)["family"]
    capabilities = ["completion", "tools"]
    if "image" in info.input_modalities and not disable_vision:
        capabilities.append("vision")
    if info.efforts:
        capabilities.append("thinking")
    parameters = f"num_ctx {context_length(info)}" + (f"\nreasoning {info.default_effort}" if info.default_effort else "")
    return {
        "license": "Served by codex-proxy from a ChatGPT Codex account",
        "modelfile": f"# Served by codex-proxy\nFROM {model.id}\n",
        "parameters": parameters,
        "template": "{{ .Prompt }}",
        "details": details(info),
        "model_info": {
            "general.architecture": family,
            "general.basename": model.id,
            "general.name": info.display_name,
            f"{family}.context_length": context_length(info),
        },
        "capabilities": capabilities,
        "modified_at": modified_at,
        "remote_model": model.id,
    }


def ps_entry(catalog: ModelCatalog, name: str, model_id: str, expires_at: str) -> dict[str, Any]:
    info = catalog.get(model_id) or ModelInfo(id=model_id, display_name=model_id)
    return {"name": name, "model": name, "size": 0, "digest": digest(model_id), "details": details(info),
            "expires_at": expires_at, "size_vram": 0, "context_length": context_length(info)}
