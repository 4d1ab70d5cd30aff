"""Management API of the per-account proxy pool under ``/admin/proxies`` (README.md, "Per-account
proxies", lists the shapes).

Credentials are never shown back: user names masked, passwords left out. The export leaves them
out too, unless asked for with ``?secrets=true`` (a file that then holds every proxy password).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import NotFound

from core.accounts.proxies import ProxyInputError, new_proxy
from core.accounts.proxy_pool import ProxyInUse
from dashboard.accounts import account_view, id_list
from dashboard.security import api_error, json_body, require_api_key, services

proxies_api = Blueprint("proxies", __name__, url_prefix="/admin/proxies")
CHECK_TIMEOUT = 120  # seconds a "check now" may wait for every proxy's answer


@proxies_api.errorhandler(ProxyInputError)
def _bad_input(error: ProxyInputError) -> Any:
    return api_error(400, str(error), "invalid_proxy")


@proxies_api.errorhandler(ProxyInUse)
def _in_use(error: ProxyInUse) -> Any:
    return api_error(409, str(error), "proxy_in_use")


def _masked_url(url: str | None) -> str | None:
    """``tls.proxy_url`` as the page may show it: the user name masked, the password hidden."""
    if not url:
        return None
    try:
        return new_proxy(url).masked_url()
    except ProxyInputError:
        return "••••••"  # not a URL this page can read: show nothing of it


@proxies_api.get("")
@require_api_key
def list_proxies() -> Any:
    """The proxies (health included), every account's mode, the global default and the check settings."""
    svc = services()
    cfg = svc.cfg
    return jsonify({"proxies": svc.proxies.public(), "accounts": [account_view(a) for a in svc.accounts.list()],
                    "default": {"url": _masked_url(cfg.tls.proxy_url), "setting": "tls.proxy_url"},
                    "check": {"interval_minutes": cfg.proxies.check_interval_minutes, "url": cfg.proxies.check_url,
                              "timeout_seconds": cfg.proxies.check_timeout_seconds}})  # fmt: skip


def _check_soon(ids: list[str]) -> None:
    if services().proxy_health is not None:
        services().proxy_health.soon(ids)  # type: ignore[union-attr]


@proxies_api.post("")
@require_api_key
def add_proxy() -> Any:
    """One proxy: ``{"url": "socks5://user:pass@host:1080", "name"?}`` or the fields. It is checked
    in the background; an existing one (same scheme, host, port, user) is updated."""
    body = request.get_json(silent=True)
    if not isinstance(body, (dict, str)):
        return api_error(400, "Body must be a proxy URL or an object with url or scheme/host/port", "invalid_request")
    result, ids = services().proxies.add([body])
    if result.failed:
        return api_error(400, result.errors[0]["error"], "invalid_proxy")
    _check_soon(ids)
    proxy = services().proxies.get(ids[0])
    assert proxy is not None
    return jsonify({"proxy": proxy.public(), "created": bool(result.added)}), 201 if result.added else 200


def import_entries(body: Any) -> list[Any] | None:
    """``{"proxies": [...]}`` (the export), a bare list, or ``{"text": "one proxy per line"}``."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and isinstance(body.get("proxies"), list):
        return body["proxies"]
    if isinstance(body, dict) and isinstance(body.get("text"), str):
        return [line.strip() for line in body["text"].splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return None


@proxies_api.post("/import")
@require_api_key
def import_proxies() -> Any:
    entries = import_entries(request.get_json(silent=True))
    if entries is None:
        return api_error(400, "Body must be {\"proxies\": [...]}, a list, or {\"text\": \"one proxy per line\"}", "invalid_request")
    result, ids = services().proxies.add(entries)
    _check_soon(ids)
    return jsonify(result.as_dict())


@proxies_api.get("/export")
@require_api_key
def export_proxies() -> Any:
    """The import format, without user names and passwords unless ``?secrets=true``."""
    secrets_too = request.args.get("secrets", "").lower() in ("1", "true", "yes")
    response = jsonify({"proxies": services().proxies.export(secrets_too), "secrets": secrets_too})
    response.headers["Cache-Control"] = "no-store"
    return response


@proxies_api.patch("/<proxy_id>")
@require_api_key
def update_proxy(proxy_id: str) -> Any:
    """Change ``name``, ``enabled``, ``url`` or the fields (``password``: absent keeps it, null clears it)."""
    body = json_body()
    if body is None:
        return api_error(400, "Body must be a JSON object", "invalid_request")
    try:
        proxy = services().proxies.update(proxy_id, body)
    except KeyError:
        raise NotFound(f"No proxy {proxy_id}") from None
    _check_soon([proxy.id])
    return jsonify({"proxy": proxy.public()})


@proxies_api.delete("/<proxy_id>")
@require_api_key
def delete_proxy(proxy_id: str) -> Any:
    if not services().proxies.remove([proxy_id]):
        raise NotFound(f"No proxy {proxy_id}")
    return jsonify({"deleted": proxy_id})


@proxies_api.post("/batch-delete")
@require_api_key
def batch_delete() -> Any:
    ids = id_list(json_body())
    if ids is None:
        return api_error(400, "Body must be {\"ids\": [\"px_...\", ...]}", "invalid_request")
    removed = services().proxies.remove(ids)
    return jsonify({"deleted": len(removed), "ids": removed, "missing": [i for i in ids if i not in removed]})


@proxies_api.post("/check")
@require_api_key
def check_all() -> Any:
    """Check every enabled proxy (or ``{"ids": [...]}``) now and answer with the results."""
    svc = services()
    body = json_body() or {}
    ids = body.get("ids") if isinstance(body.get("ids"), list) else svc.proxies.ids(enabled_only=True)
    if svc.proxy_health is None:
        return api_error(503, "The proxy is not running yet", "not_ready")
    checked = svc.run_on_loop(svc.proxy_health.check_many([str(i) for i in ids]), timeout=CHECK_TIMEOUT)
    return jsonify({"proxies": [p.public() for p in checked]})


@proxies_api.post("/<proxy_id>/check")
@require_api_key
def check_one(proxy_id: str) -> Any:
    svc = services()
    if svc.proxies.get(proxy_id) is None:
        raise NotFound(f"No proxy {proxy_id}")
    if svc.proxy_health is None:
        return api_error(503, "The proxy is not running yet", "not_ready")
    proxy = svc.run_on_loop(svc.proxy_health.check(proxy_id), timeout=CHECK_TIMEOUT)
    if proxy is None:
        raise NotFound(f"No proxy {proxy_id}")
    return jsonify({"proxy": proxy.public()})


@proxies_api.post("/assign")
@require_api_key
def assign() -> Any:
    """``{"account_ids": [...], "mode": "default" | "direct" | "automatic" | "specific", "proxy_id"?}``."""
    svc = services()
    body = json_body()
    ids = body.get("account_ids") if body else None
    if body is None or not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return api_error(400, "Body must be {\"account_ids\": [...], \"mode\": ..., \"proxy_id\"?}", "invalid_request")
    known = [i for i in ids if svc.pool.get(i) is not None]
    proxy_id = body.get("proxy_id")
    svc.proxies.assign(known, str(body.get("mode")), proxy_id if isinstance(proxy_id, str) else None)
    return jsonify({"updated": len(known), "accounts": {i: svc.proxies.describe(i) for i in known},
                    "missing": [i for i in ids if i not in known]})  # fmt: skip
