"""Typed settings: one frozen dataclass per section of config/default.yaml.

``core.config.ConfigStore`` merges the layers (shipped defaults, ``<data>/local.yaml``,
environment variables, process-only overrides) and builds a ``Settings`` from the result once per
snapshot, so code reads plain attributes (``cfg.api.timeout_seconds``), however hot the path.

The defaults live in config/default.yaml only: no field below has a Python default, and building
fails when a field has no value in the merged config. Every value is checked against its field's
type while loading; a wrong one is an error naming the key and the file (or environment variable)
it came from. Lists load as tuples and mappings as read-only mappings, so a snapshot cannot be
changed by whoever holds it.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

from mitmproxy.utils import human

Converter = Callable[[Any], Any]  # a raw YAML value → the field's value; ValueError says what is wrong


class SettingsError(ValueError):
    """A setting that cannot be used: wrong type, unknown, or missing from the defaults."""


def byte_size(value: Any) -> int:
    """``64m``, ``1g``, ``512k`` or a plain number of bytes (mitmproxy's own size syntax)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("must be a size such as 64m, 1g or a number of bytes")
    try:
        size = human.parse_size(str(value))
    except ValueError:
        raise ValueError(f"must be a size such as 64m, 1g or a number of bytes, not {value!r}") from None
    if size is None or size <= 0:
        raise ValueError("must be a size above zero")
    return size


def one_of(*choices: str) -> Converter:
    """A text that must be one of ``choices``."""

    def convert(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    return convert


# --- the sections ----------------------------------------------------------------------------------
# One class per top-level key of config/default.yaml, one field per key under it; the comments in
# default.yaml say what each one does.

POSITIVE = "positive"  # an Annotated marker: zero or less is refused (a zero timeout or interval)
ByteSize = Annotated[int, byte_size]  # written as text in YAML, held as a number of bytes
PositiveNumber = Annotated[float, POSITIVE]  # a timeout or an interval (in the unit its name says)
PositiveCount = Annotated[int, POSITIVE]


@dataclass(frozen=True, slots=True)
class Price:
    """What a model's tokens cost on its API, in USD per million tokens."""

    input: float
    cached_input: float
    output: float


_PRICE_FIELDS = frozenset({"input", "cached_input", "output"})


def price_table(value: Any) -> Mapping[str, Price]:
    """``{model name or glob: {input, cached_input?, output}}``; an entry set to null has no price
    (how local.yaml takes back a shipped one). ``cached_input`` defaults to ``input``."""
    if not isinstance(value, Mapping):
        raise ValueError("must be a mapping of model name (or glob) → {input, cached_input, output}")
    table = {}
    for name, entry in value.items():
        if entry is None:
            continue
        if not isinstance(name, str) or not name:
            raise ValueError(f"has a model name that is not a text: {name!r}")
        if not isinstance(entry, Mapping) or not {"input", "output"} <= set(entry) or not set(entry) <= _PRICE_FIELDS:
            raise ValueError(f"{name}: must be {{input, cached_input, output}} in USD per 1M tokens (cached_input optional)")
        for field_name, number in entry.items():
            if isinstance(number, bool) or not isinstance(number, (int, float)) or number < 0:
                raise ValueError(f"{name}.{field_name} must be a number of USD per 1M tokens, not {number!r}")
        table[name] = Price(float(entry["input"]), float(entry.get("cached_input", entry["input"])), float(entry["output"]))
    return types.MappingProxyType(table)


PriceTable = Annotated[Mapping[str, Price], price_table]
# Percent thresholds: one list for both quota windows, or {"primary": [...], "secondary": [...]}.
Thresholds = tuple[int | float, ...] | Mapping[str, tuple[int | float, ...]]
CustomModel = str | Mapping[str, Any]  # a model id, or a models.yaml-style entry


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str
    port: int
    proxy_api_key: str | None
    max_body_size: ByteSize


@dataclass(frozen=True, slots=True)
class ApiSettings:
    base_url: str
    timeout_seconds: PositiveNumber
    connect_timeout_seconds: PositiveNumber


@dataclass(frozen=True, slots=True)
class ClientSettings:
    originator: str
    app_version: str
    platform: str
    arch: str
    terminal: str
    version_feed_url: str | None
    version_check_minutes: PositiveNumber
    residency: str | None


@dataclass(frozen=True, slots=True)
class ModelSettings:
    default: str
    default_reasoning_effort: str | None
    default_service_tier: str | None
    aliases: Mapping[str, str]
    custom_models: tuple[CustomModel, ...]


@dataclass(frozen=True, slots=True)
class AuthSettings:
    rotation_strategy: str
    session_affinity: bool
    affinity_ttl_minutes: float
    plan_routing: bool
    rate_limit_backoff_seconds: float
    cooldown_seconds: float
    refresh_margin_seconds: float
    refresh_retry_base_seconds: float
    refresh_retry_max_seconds: float
    refresh_timeout_seconds: PositiveNumber
    login_timeout_seconds: PositiveNumber
    oauth_client_id: str
    oauth_issuer: str
    oauth_redirect_uri: str
    oauth_scope: str
    oauth_authorize_url: str | None
    oauth_token_url: str | None
    oauth_device_code_url: str | None
    oauth_device_token_url: str | None
    oauth_device_verification_url: str | None
    oauth_device_redirect_uri: str | None


@dataclass(frozen=True, slots=True)
class LogsSettings:
    enabled: bool
    retention_days: float
    capture_bodies: bool
    bodies_kept: PositiveCount


@dataclass(frozen=True, slots=True)
class TlsSettings:
    impersonate: str | None
    ca_file: str | None
    proxy_url: str | None
    force_http11: bool
    max_transfers: PositiveCount
    idle_connections: PositiveCount


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    transport: Annotated[str, one_of("auto", "websocket", "sse")]
    websocket_idle_seconds: PositiveNumber
    websocket_max_age_minutes: PositiveNumber
    websockets_per_account: PositiveCount


@dataclass(frozen=True, slots=True)
class ProxiesSettings:
    check_interval_minutes: PositiveNumber
    check_url: str | None
    check_timeout_seconds: PositiveNumber


@dataclass(frozen=True, slots=True)
class QuotaSettings:
    refresh_interval_minutes: int  # whole minutes: the dashboard edits it as an integer
    warning_thresholds: Thresholds
    skip_exhausted: bool


@dataclass(frozen=True, slots=True)
class SessionSettings:
    password: str | None
    ttl_minutes: PositiveCount  # whole minutes: the dashboard edits it as an integer
    cleanup_interval_minutes: PositiveNumber
    login_attempts: PositiveCount
    login_window_minutes: PositiveNumber


@dataclass(frozen=True, slots=True)
class StreamSettings:
    commit_after_seconds: float
    keepalive_seconds: PositiveNumber
    idle_timeout_seconds: PositiveNumber


@dataclass(frozen=True, slots=True)
class OllamaSettings:
    enabled: bool
    host: str
    port: int
    version: str
    disable_vision: bool


@dataclass(frozen=True, slots=True)
class InterceptSettings:
    hosts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PricingSettings:
    models: PriceTable


@dataclass(frozen=True, slots=True)
class StoreSettings:
    url: str | None  # a postgresql:// URL; None: SQLite in the data folder
    pool_size: PositiveCount


@dataclass(frozen=True, slots=True)
class ProvidersSettings:
    key_cooldown_seconds: PositiveNumber
    models_refresh_minutes: PositiveNumber
    default_max_tokens: PositiveCount


@dataclass(frozen=True, slots=True)
class ImagesSettings:
    host_model: str


@dataclass(frozen=True, slots=True)
class Settings:
    """One immutable snapshot of the effective configuration, plus the data folder it belongs to."""

    server: ServerSettings
    api: ApiSettings
    client: ClientSettings
    model: ModelSettings
    auth: AuthSettings
    logs: LogsSettings
    tls: TlsSettings
    upstream: UpstreamSettings
    proxies: ProxiesSettings
    quota: QuotaSettings
    session: SessionSettings
    stream: StreamSettings
    ollama: OllamaSettings
    intercept: InterceptSettings
    pricing: PricingSettings
    store: StoreSettings
    providers: ProvidersSettings
    images: ImagesSettings
    data_dir: Path

    @property
    def db_path(self) -> Path:
        return self.data_dir / "codex-proxy.db"

    def at(self, dotted: str) -> Any:
        """One setting by its dotted name (``"auth.rotation_strategy"``), for code that names
        settings in data rather than in code: the dashboard's settings API. KeyError if unknown."""
        section, _, name = dotted.partition(".")
        if name not in SECTIONS.get(section, {}):
            raise KeyError(dotted)
        return getattr(getattr(self, section), name)


# --- converters built from the field types ---------------------------------------------------------


def _is_union(hint: Any) -> bool:
    return get_origin(hint) in (Union, types.UnionType)


def _describe(hint: Any) -> str:
    if hint is type(None):
        return "null"
    if _is_union(hint):
        arms = get_args(hint)
        return " or ".join(_describe(arm) for arm in arms if not (arm is int and float in arms))  # a float takes ints
    origin = get_origin(hint)
    if origin is tuple:
        return f"a list (each item {_describe(get_args(hint)[0])})"
    if origin is Mapping:
        return f"a mapping (each value {_describe(get_args(hint)[1])})"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a non-empty text", Any: "any value"}[hint]


def _converter(hint: Any) -> Converter:
    """How to check (and freeze) one field's YAML value, derived once from its annotation."""
    if get_origin(hint) is Annotated:
        base, extra = get_args(hint)
        if extra != POSITIVE:
            return extra  # a converter of its own (byte_size)
        convert_base = _converter(base)

        def positive(value: Any) -> Any:
            converted = convert_base(value)
            if converted <= 0:
                raise ValueError(f"must be above zero, not {value!r}")
            return converted

        return positive
    described = _describe(hint)

    def convert(value: Any) -> Any:
        try:
            return _convert(value, hint)
        except ValueError:
            raise ValueError(f"must be {described}, not {value!r}") from None

    return convert


def _convert(value: Any, hint: Any) -> Any:
    if hint is Any:
        return _freeze(value)
    if hint is type(None):
        if value is None:
            return None
    elif _is_union(hint):
        arms = get_args(hint)
        if value == "" and type(None) in arms:
            return None  # an empty optional text means "not set", as null does
        for arm in arms:
            try:
                return _convert(value, arm)
            except ValueError:
                continue
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str) and value:
            return value
    elif get_origin(hint) is tuple:
        if isinstance(value, (list, tuple)):
            item = get_args(hint)[0]
            return tuple(_convert(v, item) for v in value)
    elif get_origin(hint) is Mapping:
        if isinstance(value, Mapping):
            key_hint, value_hint = get_args(hint)
            return types.MappingProxyType({_convert(k, key_hint): _convert(v, value_hint) for k, v in value.items()})
    else:
        raise TypeError(f"no converter for {hint!r}")  # a field type this module does not handle yet
    raise ValueError(value)


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return types.MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


# --- loading ---------------------------------------------------------------------------------------


def _field_types(cls: type) -> dict[str, Any]:
    hints = get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in fields(cls)}


# Derived from the classes above: section name → its class, and → {field name → converter}.
SECTION_TYPES: dict[str, type] = {name: hint for name, hint in _field_types(Settings).items() if name != "data_dir"}
SECTIONS: dict[str, dict[str, Converter]] = {
    section: {name: _converter(hint) for name, hint in _field_types(cls).items()} for section, cls in SECTION_TYPES.items()
}


def build(merged: Mapping[str, Any], data_dir: Path, source_of: Callable[[str], str]) -> Settings:
    """The typed snapshot of a merged config tree. ``source_of(dotted)`` names where a value came
    from, for the error message when it does not fit its field."""
    sections: dict[str, Any] = {}
    for section, converters in SECTIONS.items():
        raw = merged.get(section)
        if section not in merged:
            raise SettingsError(f"{source_of(section)}: section '{section}' is missing (every setting needs a default)")
        if not isinstance(raw, Mapping):
            raise SettingsError(f"{source_of(section)}: '{section}' must be a mapping of settings, not {raw!r}")
        values = {}
        for name, convert in converters.items():
            dotted = f"{section}.{name}"
            if name not in raw:
                raise SettingsError(f"{source_of(dotted)}: '{dotted}' is missing (every setting needs a default)")
            try:
                values[name] = convert(raw[name])
            except ValueError as error:
                raise SettingsError(f"{source_of(dotted)}: '{dotted}' {error}") from None
        sections[section] = SECTION_TYPES[section](**values)
    return Settings(**sections, data_dir=data_dir)


def unknown_keys(tree: Mapping[str, Any]) -> list[str]:
    """Dotted names in ``tree`` that no setting has (a typo, or a key an older version had)."""
    unknown = []
    for section, value in tree.items():
        known = SECTIONS.get(str(section))
        if known is None:
            unknown.append(str(section))
        elif isinstance(value, Mapping):
            unknown.extend(f"{section}.{name}" for name in value if name not in known)
    return unknown


def parse_env(dotted: str, raw: str) -> Any:
    """An environment variable's text as the value of setting ``dotted`` (checked when built)."""
    section, _, name = dotted.partition(".")
    hint = get_type_hints(SECTION_TYPES[section])[name]  # without Annotated: the plain type
    kinds = set(get_args(hint)) if _is_union(hint) else {hint}
    if bool in kinds:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if int in kinds:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"'{raw}' is not a whole number") from None
    return raw
