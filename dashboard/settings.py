"""Settings through the management API: every value the dashboard can change, checked, written
to ``<data>/local.yaml`` (ConfigStore.update_local) and applied at once where the running proxy
reads it per request. Listeners and mitmproxy's TLS scope are set up at start, so those settings
say so (``live: false``) and the answer lists what waits for a restart.

* ``GET/POST /admin/settings``: ``{"values": {"dotted.key": value}}``; a POST takes dotted keys.
* ``GET/POST /admin/rotation-settings`` and ``/admin/quota-settings``: one section's settings by
  their short names (``{"rotation_strategy": ...}``).
* ``GET/POST /admin/server-key``: reveal, set or regenerate the proxy key.
* ``POST /admin/dashboard-password``: set or clear the password other machines log in with.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from flask import Blueprint, current_app, jsonify

from core.accounts.strategies import STRATEGIES
from core.config import new_api_key, set_path
from core.settings import Settings
from dashboard.security import api_error, current_session, json_body, require_api_key, services, sessions

settings_api = Blueprint("settings", __name__, url_prefix="/admin")

Check = Callable[[Any], str | None]  # a setting's value → what is wrong with it, or None
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9*]([A-Za-z0-9*.-]*[A-Za-z0-9])?$")
MIN_SECRET_LENGTH = 8


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _one_of(choices: tuple[str, ...]) -> Check:
    return lambda value: None if value in choices else f"must be one of: {', '.join(choices)}"


def _integer(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        return None if ok else f"must be an integer from {low} to {high}"

    return check


def _thresholds(value: Any) -> str | None:
    """A list for both windows, or one list per window: ``{"primary": [...], "secondary": [...]}``."""
    lists = list(value.values()) if isinstance(value, dict) and set(value) <= {"primary", "secondary"} else [value]
    ok = all(
        isinstance(items, list) and all(isinstance(t, int) and not isinstance(t, bool) and 1 <= t <= 100 for t in items)
        for items in lists
    )
    return None if ok else "integers 1-100, as a list or {\"primary\": [...], \"secondary\": [...]}"


def _served_model(value: Any) -> str | None:
    """A name the catalog resolves (a model, an alias, with or without suffixes)."""
    if not isinstance(value, str) or not _NAME.match(value):
        return "must be a model name"
    return None if services().catalog.resolve(value).known else f"'{value}' is not a known model or alias"


def _aliases(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be an object of client name → model"
    for name, target in value.items():
        if not _NAME.match(str(name)):
            return f"'{name}' is not a usable model name"
        if problem := _served_model(target):
            return f"{name}: {problem}"
    return None


def _host(value: Any) -> str | None:
    return None if isinstance(value, str) and (_HOST.match(value) or value in ("::", "::1")) else "must be a host name or address"


def _hosts(value: Any) -> str | None:
    ok = isinstance(value, list) and all(isinstance(h, str) and _HOST.match(h) for h in value)
    return None if ok else "must be a list of host names"


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) and 0 < len(value) <= 100 else "must be a short text"


def _number(low: float, high: float) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high
        return None if ok else f"must be a number from {low:g} to {high:g}"

    return check


def _check_url(value: Any) -> str | None:
    """An http(s) URL to fetch through each proxy, or null (connect only)."""
    ok = value is None or (isinstance(value, str) and re.match(r"^https?://[^\s]{1,500}$", value) is not None)
    return None if ok else "must be an http:// or https:// URL, or null to only connect"


@dataclass(frozen=True, slots=True)
class Setting:
    check: Check
    live: bool = True  # False: read at start-up only, so it waits for a restart
    whole: bool = False  # a mapping saved as given, not merged into what local.yaml has


SETTINGS: dict[str, Setting] = {
    "auth.rotation_strategy": Setting(_one_of(STRATEGIES)),
    "auth.session_affinity": Setting(_boolean),
    "auth.plan_routing": Setting(_boolean),
    "quota.refresh_interval_minutes": Setting(_integer(0, 10_080)),
    "quota.warning_thresholds": Setting(_thresholds),
    "quota.skip_exhausted": Setting(_boolean),
    "model.default": Setting(_served_model),
    "model.aliases": Setting(_aliases, whole=True),
    "ollama.enabled": Setting(_boolean, live=False),
    "ollama.host": Setting(_host, live=False),
    "ollama.port": Setting(_integer(1, 65_535), live=False),
    "ollama.version": Setting(_text, live=False),
    "ollama.disable_vision": Setting(_boolean, live=False),
    "intercept.hosts": Setting(_hosts, live=False),
    "logs.enabled": Setting(_boolean),
    "logs.capture_bodies": Setting(_boolean),
    "logs.bodies_kept": Setting(_integer(1, 10_000)),
    "session.ttl_minutes": Setting(_integer(5, 525_600)),
    "proxies.check_interval_minutes": Setting(_number(0.1, 10_080)),
    "proxies.check_url": Setting(_check_url),
    "proxies.check_timeout_seconds": Setting(_number(1, 120)),
}


def startup_config() -> Settings:
    return current_app.extensions["codex_startup_config"]


def _invalid(values: dict[str, Any]) -> str | None:
    for key, value in values.items():
        if problem := SETTINGS[key].check(value):
            return f"{key} {problem}"
    return None


def save(values: dict[str, Any]) -> Settings:
    """Write checked dotted ``values`` to local.yaml and swap the running config."""
    patch: dict[str, Any] = {}
    for key, value in values.items():
        set_path(patch, key, value)
    return services().config.update_local(patch, replace=[key for key in values if SETTINGS[key].whole])


def _runtime() -> dict[str, Any]:
    """What the running process wrote about itself (its listeners) at start."""
    path = services().cfg.data_dir / "runtime.json"
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}


def settings_view() -> dict[str, Any]:
    cfg, startup, store = services().cfg, startup_config(), services().config
    ollama = _runtime().get("ollama_listen")
    return {
        "values": {key: cfg.at(key) for key in SETTINGS},
        "live": {key: setting.live for key, setting in SETTINGS.items()},
        "restart_pending": [key for key, s in SETTINGS.items() if not s.live and cfg.at(key) != startup.at(key)],
        "env_overrides": {key: env for key in SETTINGS if (env := store.env_override(key))},
        "ollama_listening": f"http://{ollama[0]}:{ollama[1]}" if ollama else None,
        "local_yaml": str(store.local_path),
        "strategies": list(STRATEGIES),
        "has_key": bool(cfg.server.proxy_api_key),
        "has_password": bool(cfg.session.password),
        "client_version": services().version_feed.status(),
    }


@settings_api.get("/settings")
@require_api_key
def show_settings() -> Any:
    return jsonify(settings_view())


@settings_api.post("/settings")
@require_api_key
def save_settings() -> Any:
    body = json_body() or {}
    unknown = [key for key in body if key not in SETTINGS]
    if unknown or not body:
        return api_error(400, f"Give any of: {', '.join(SETTINGS)} (unknown: {', '.join(unknown) or 'none'})", "invalid_request")
    if problem := _invalid(body):
        return api_error(400, problem, "invalid_request")
    save(body)
    view = settings_view()
    return jsonify({"success": True, "saved": list(body), "restart_needed": [k for k in body if not SETTINGS[k].live], **view})


def _section_endpoints(path: str, section: str, keys: tuple[str, ...], extra: Callable[[], dict[str, Any]] | None = None) -> None:
    """``GET``/``POST /admin/<path>``: the settings of one section by their short names."""

    def view() -> dict[str, Any]:
        cfg = services().cfg
        return {**{key: cfg.at(f"{section}.{key}") for key in keys}, **(extra() if extra else {})}

    def show() -> Any:
        return jsonify(view())

    def change() -> Any:
        body = json_body() or {}
        values = {f"{section}.{key}": body[key] for key in keys if key in body}
        if not values:
            return api_error(400, f"Nothing to change: give any of {', '.join(keys)}", "invalid_request")
        if problem := _invalid(values):
            return api_error(400, problem.removeprefix(f"{section}."), "invalid_request")
        save(values)
        return jsonify({"success": True, **view()})

    name = path.replace("-", "_")
    settings_api.add_url_rule(f"/{path}", name, require_api_key(show), methods=["GET"])
    settings_api.add_url_rule(f"/{path}", f"set_{name}", require_api_key(change), methods=["POST"])


_section_endpoints("rotation-settings", "auth", ("rotation_strategy", "session_affinity", "plan_routing"),
                   lambda: {"strategies": list(STRATEGIES), "plan_models": services().pool.plans.snapshot()})  # fmt: skip
_section_endpoints("quota-settings", "quota", ("refresh_interval_minutes", "warning_thresholds", "skip_exhausted"))


def _secret_problem(value: Any, *, spaces: bool = False) -> str | None:
    """A key goes in an HTTP header (no spaces); a password may be a passphrase."""
    if not isinstance(value, str) or not MIN_SECRET_LENGTH <= len(value) <= 200 or (not spaces and any(c.isspace() for c in value)):
        return f"must be {MIN_SECRET_LENGTH}-200 characters" + ("" if spaces else " without spaces")
    return None


def _log_out_others() -> None:
    """A new key or password ends every other remote session (this one stays logged in)."""
    current = current_session()
    sessions().clear(keep=current.id if current is not None else None)


@settings_api.get("/server-key")
@require_api_key
def reveal_key() -> Any:
    """The proxy key itself, for the dashboard's reveal and copy buttons (the page only ever
    shows it masked)."""
    response = jsonify({"api_key": services().cfg.server.proxy_api_key})  # the name core/redact.py hides in mitmweb
    response.headers["Cache-Control"] = "no-store"
    return response


@settings_api.post("/server-key")
@require_api_key
def change_key() -> Any:
    """``{"generate": true}`` or ``{"api_key": "<new key>"}``. Applies at once: every client needs
    the new key from now on."""
    body = json_body() or {}
    if body.get("generate") is True:
        key = new_api_key()
    elif problem := _secret_problem(body.get("api_key")):
        return api_error(400, f"api_key {problem}", "invalid_request")
    else:
        key = body["api_key"]
    services().config.update_local({"server": {"proxy_api_key": key}})
    _log_out_others()
    response = jsonify({"success": True, "api_key": key})
    response.headers["Cache-Control"] = "no-store"
    return response


@settings_api.post("/dashboard-password")
@require_api_key
def change_password() -> Any:
    """``{"password": "<new>"}``, or ``{"password": null}`` to log in with the proxy key again."""
    body = json_body() or {}
    if "password" not in body:
        return api_error(400, "Give {\"password\": \"...\"} or {\"password\": null}", "invalid_request")
    password = body["password"]
    if password is not None and (problem := _secret_problem(password, spaces=True)):
        return api_error(400, f"password {problem}", "invalid_request")
    services().config.update_local({"session": {"password": password}})
    _log_out_others()
    return jsonify({"success": True, "has_password": password is not None})
