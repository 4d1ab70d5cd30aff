"""The fake's model catalogue: the proxy's config/models.yaml plus newer slugs the backend serves.

Loaded once. Shapes the ``/codex/models`` answer (the backend's field names) and drives the
model, plan and reasoning-effort checks on ``/codex/responses``.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import orjson
import yaml

# The proxy's config/models.yaml, which pyproject.toml ships as package data of core.defaults.
MODELS_YAML = ("core.defaults", "models.yaml")

ALL_PLANS = (
    "free", "go", "plus", "pro", "prolite", "team", "business", "enterprise", "edu", "edu_plus",
    "edu_pro", "education", "k12", "finserv", "hc", "quorum", "sci", "free_workspace",
    "self_serve_business_prolite", "self_serve_business_usage_based", "enterprise_cbp_automation",
    "enterprise_cbp_usage_based",
)  # fmt: skip
NOT_FREE = tuple(p for p in ALL_PLANS if p not in ("free", "free_workspace", "k12"))
RESTRICTED = {"gpt-5.4": NOT_FREE, "codex-auto-review": NOT_FREE}  # plan restrictions as of 2026-08
MIN_CLIENT = {"gpt-5.6-sol": "0.144.0", "gpt-5.5": "0.124.0"}
EFFORT_TEXT = {
    "none": "No reasoning",
    "minimal": "Minimal reasoning",
    "low": "Fast responses with lighter reasoning",
    "medium": "Balances speed and reasoning depth",
    "high": "Greater reasoning depth for complex problems",
    "xhigh": "Extra high reasoning depth for complex problems",
    "max": "Maximum reasoning depth",
    "ultra": "Longest reasoning",
}

# Slugs the backend serves that the proxy's static yaml does not list.
EXTRA_MODELS: list[dict[str, Any]] = [
    {
        "id": "gpt-5.6-sol",
        "display_name": "GPT-5.6 Sol",
        "description": "Newest frontier agentic coding model",
        "efforts": ["low", "medium", "high", "xhigh", "max", "ultra"],
        "default_effort": "medium",
        "input_modalities": ["text", "image"],
        "context_window": 272000,
        "max_output_tokens": 128000,
        "service_tiers": ["priority"],
    },
    {
        "id": "gpt-5.3-codex-spark",
        "display_name": "GPT-5.3 Codex Spark",
        "description": "Ultra-fast coding model",
        "efforts": ["low", "medium", "high", "xhigh"],
        "default_effort": "high",
        "input_modalities": ["text"],
        "context_window": 128000,
        "supported_in_api": False,
    },
    {
        "id": "codex-auto-review",
        "display_name": "Codex Auto Review",
        "description": "Automatic code review",
        "efforts": ["low", "medium", "high"],
        "default_effort": "medium",
        "input_modalities": ["text"],
        "context_window": 272000,
        "visibility": "hide",
    },
]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    slug: str
    efforts: frozenset[str]
    plans: frozenset[str]
    entry: dict[str, Any] = field(hash=False, compare=False)  # the /codex/models JSON object


def _version(text: str) -> tuple[int, ...]:
    out = []
    for part in str(text).split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def _entry(model: dict[str, Any], priority: int) -> dict[str, Any]:
    slug = model["id"]
    efforts = list(model.get("efforts") or ["low", "medium", "high"])
    tiers = [
        {"id": t, "name": "Fast" if t == "priority" else t.title(), "description": "1.5x speed, increased usage"}
        for t in model.get("service_tiers") or []
    ]
    ctx = model.get("context_window") or 272000
    return {
        "slug": slug,
        "display_name": model.get("display_name") or slug,
        "description": model.get("description") or "",
        "visibility": model.get("visibility", "list"),
        "priority": priority,
        "supported_in_api": model.get("supported_in_api", True),
        "minimal_client_version": MIN_CLIENT.get(slug, "0.1.0"),
        "available_in_plans": list(RESTRICTED.get(slug, ALL_PLANS)),
        "upgrade": None,
        "default_reasoning_level": model.get("default_effort") or efforts[len(efforts) // 2],
        "supported_reasoning_levels": [{"effort": e, "description": EFFORT_TEXT.get(e, e)} for e in efforts],
        "supports_reasoning_summaries": True,
        "supports_reasoning_summary_parameter": True,
        "default_reasoning_summary": "auto",
        "service_tiers": tiers,
        "default_service_tier": None,
        "additional_speed_tiers": ["fast"] if tiers else [],
        "support_verbosity": True,
        "default_verbosity": "medium",
        "context_window": ctx,
        "max_context_window": model.get("max_context_window") or ctx,
        "max_output_tokens": model.get("max_output_tokens") or 128000,
        "auto_compact_token_limit": int(ctx * 0.9),
        "truncation_policy": {"mode": "tokens", "limit": 10000},
        "input_modalities": list(model.get("input_modalities") or ["text"]),
        "supports_image_detail_original": "image" in (model.get("input_modalities") or []),
        "supports_parallel_tool_calls": True,
        "supports_search_tool": True,
        "web_search_tool_type": "web_search",
        "apply_patch_tool_type": "freeform",
        "shell_type": "shell_command",
        "experimental_supported_tools": [],
        "prefer_websockets": model.get("prefer_websockets", True),
        "use_responses_lite": slug.startswith("gpt-5.6"),
    }


class Catalog:
    """Immutable lookup of the fake's models, built once from the yaml."""

    def __init__(self, models: list[dict[str, Any]]) -> None:
        self.models: dict[str, ModelInfo] = {}
        for index, model in enumerate(models):
            entry = _entry(model, index + 1)
            self.models[entry["slug"]] = ModelInfo(
                slug=entry["slug"],
                efforts=frozenset(model.get("efforts") or ["low", "medium", "high"]),
                plans=frozenset(entry["available_in_plans"]),
                entry=entry,
            )
        self._lists: dict[tuple[str | None, str | None], tuple[bytes, str]] = {}

    def get(self, slug: str) -> ModelInfo | None:
        return self.models.get(slug)

    def listing(self, plan: str | None, client_version: str | None) -> tuple[bytes, str]:
        """(JSON body, ETag) of ``/codex/models`` for a plan; a low client_version hides new models."""
        key = (plan, client_version)
        cached = self._lists.get(key)
        if cached is None:
            wanted = _version(client_version) if client_version else None
            entries = [
                m.entry
                for m in self.models.values()
                if (plan is None or plan in m.plans)
                and (wanted is None or _version(m.entry["minimal_client_version"]) <= wanted)
            ]
            body = orjson.dumps({"models": entries})
            cached = (body, f'W/"{hashlib.sha256(body).hexdigest()[:32]}"')
            self._lists[key] = cached
        return cached

    @property
    def etag(self) -> str:
        return self.listing(None, None)[1]


@functools.cache
def catalog() -> Catalog:
    """The process-wide catalogue (the yaml is read once)."""
    models: list[dict[str, Any]] = []
    package, name = MODELS_YAML
    try:
        data = yaml.safe_load(resources.files(package).joinpath(name).read_text(encoding="utf-8")) or {}
        models = [m for m in data.get("models") or [] if isinstance(m, dict) and m.get("id")]
    except (OSError, ModuleNotFoundError):  # the fake without the proxy beside it: its own models only
        models = []
    known = {m["id"] for m in models}
    models.extend(m for m in EXTRA_MODELS if m["id"] not in known)
    return Catalog(models)
