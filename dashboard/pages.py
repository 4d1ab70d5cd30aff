"""Dashboard pages: Accounts (``/``), Proxies, Providers, Connect, Keys, Usage, Logs and Settings. Each is a server-rendered
frame plus a small script module (static/js/<page>.js) that works through the management API with
the session's CSRF token. Text comes from dashboard/i18n.py in the chosen language."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, render_template, request, send_file

from core.codex.catalog import ModelInfo
from core.providers.model import DEFAULT_BASE_URL, KIND_WIRES, KINDS
from dashboard.gate import dashboard_page
from dashboard.i18n import page_context, strings_for
from dashboard.security import current_session, require_api_key, services
from dashboard.settings import settings_view

pages = Blueprint("pages", __name__)

NAV = (("accounts", "/"), ("proxies", "/dashboard/proxies"), ("providers", "/dashboard/providers"), ("connect", "/dashboard/connect"),
       ("keys", "/dashboard/keys"), ("usage", "/dashboard/usage"), ("logs", "/dashboard/logs"), ("settings", "/dashboard/settings"))  # fmt: skip
CA_CERT = "mitmproxy-ca-cert.pem"  # the public certificate only; mitmproxy-ca.pem next to it holds the key


def mask(key: str | None) -> str:
    if not key:
        return ""
    return key[:5] + "•" * 10 + key[-3:] if len(key) > 12 else "•" * len(key)


def render_page(page: str, **context: Any) -> str:
    session = current_session()
    assert session is not None  # dashboard_page made sure
    base = page_context()
    boot = {"page": page, "lang": base["lang"], "csrf": session.csrf, "strings": strings_for(base["lang"]),
            **context.pop("boot", {})}  # fmt: skip
    return render_template(f"{page}.html", **base, page=page, nav=NAV, remote=not session.local, csrf=session.csrf,
                           boot=boot, **context)  # fmt: skip


def origin() -> str:
    """The address the browser used for this proxy: what a client on that network should use too."""
    return request.host_url.rstrip("/")


@pages.get("/")
@dashboard_page
def accounts() -> Any:
    return render_page("accounts", has_accounts=bool(services().pool.all()))


def mitmproxy_confdir() -> Path:
    try:
        from mitmproxy import ctx

        confdir = ctx.options.confdir
    except AttributeError:  # no mitmproxy master in this process (the app on its own)
        confdir = "~/.mitmproxy"
    return Path(os.path.expanduser(confdir))


def _model_row(info: ModelInfo, default: str) -> dict[str, Any]:
    return {"id": info.id, "name": info.display_name, "description": info.description, "context": info.context_window,
            "max_context": info.max_context_window, "max_output": info.max_output_tokens, "efforts": info.efforts,
            "default_effort": info.default_effort, "inputs": info.input_modalities, "fast": bool(info.service_tiers),
            "is_default": info.id == default}  # fmt: skip


@pages.get("/dashboard/connect")
@dashboard_page
def connect() -> Any:
    svc = services()
    catalog, cfg = svc.catalog, svc.cfg
    default = catalog.resolve(None).id
    host = request.host
    view = settings_view()
    return render_page(
        "connect",
        origin=origin(),
        proxy_host=host,
        masked_key=mask(cfg.server.proxy_api_key),
        has_key=bool(cfg.server.proxy_api_key),
        default_model=default,
        models=[_model_row(m, default) for m in catalog.list()],
        aliases=sorted(catalog.aliases.items()),
        ollama_url=view["ollama_listening"],
        ca_path=str(mitmproxy_confdir() / CA_CERT),
        intercept_hosts=cfg.intercept.hosts,
    )


@pages.get("/dashboard/proxies")
@dashboard_page
def proxies() -> Any:
    return render_page("proxies")


@pages.get("/dashboard/providers")
@dashboard_page
def providers() -> Any:
    return render_page("providers", kinds=KINDS, boot={"kinds": {k: {"base_url": DEFAULT_BASE_URL.get(k), "wires": KIND_WIRES[k]} for k in KINDS}})


@pages.get("/dashboard/keys")
@dashboard_page
def keys() -> Any:
    return render_page("keys", models=[m.id for m in services().catalog.list()])


@pages.get("/dashboard/usage")
@dashboard_page
def usage() -> Any:
    return render_page("usage", boot={"keys": {k.id: k.label for k in services().key_guard.all()}})


@pages.get("/dashboard/logs")
@dashboard_page
def logs() -> Any:
    svc = services()
    return render_page("logs", boot={
        "accounts": {a.id: a.label or a.email or a.id for a in svc.pool.all()},
        "keys": {k.id: k.label for k in svc.key_guard.all()},
        "models": [m.id for m in svc.catalog.list()],
        "capture_bodies": svc.cfg.logs.capture_bodies,
    })  # fmt: skip


@pages.get("/dashboard/settings")
@dashboard_page
def settings() -> Any:
    svc = services()
    view = settings_view()
    return render_page("settings", settings=view, values=view["values"], masked_key=mask(svc.cfg.server.proxy_api_key),
                       models=[m.id for m in svc.catalog.list()], boot={"settings": view})  # fmt: skip


@pages.get("/dashboard/ca.pem")
@require_api_key
def ca_certificate() -> Response:
    """mitmproxy's CA certificate (public), for clients in proxy mode to trust."""
    path = mitmproxy_confdir() / CA_CERT
    if not path.is_file():
        abort(404, "mitmproxy has not created its CA yet")
    return send_file(path, mimetype="application/x-pem-file", as_attachment=True, download_name="codex-proxy-ca.pem")
