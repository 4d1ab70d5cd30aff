"""Versioned schema migrations (sqlite-utils ``Migrations``); append new steps, never edit old ones."""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

migrations = Migrations("codex-proxy")


@migrations()
def m001_accounts(db: sqlite_utils.Database) -> None:
    db["accounts"].create(
        {
            "id": str,
            "label": str,
            "email": str,
            "chatgpt_account_id": str,
            "chatgpt_user_id": str,
            "plan": str,
            "status": str,
            "access_token": str,
            "refresh_token": str,
            "id_token": str,
            "expires_at": float,
            "added_at": float,
            "updated_at": float,
            "last_used_at": float,
            "cooldown_until": float,
            "last_error": str,
        },
        pk="id",
        not_null={"id", "status"},
        defaults={"status": "active"},
    )


@migrations()
def m002_request_log(db: sqlite_utils.Database) -> None:
    db["request_log"].create(
        {
            "id": int,
            "ts": float,
            "request_id": str,
            "account_id": str,
            "protocol": str,
            "path": str,
            "model": str,
            "requested_model": str,
            "stream": int,
            "status": int,
            "error": str,
            "input_tokens": int,
            "output_tokens": int,
            "cached_tokens": int,
            "reasoning_tokens": int,
            "ttfb_ms": float,
            "duration_ms": float,
            "attempts": int,
        },
        pk="id",
    )
    db["request_log"].create_index(["ts"])
    db["request_log"].create_index(["account_id", "ts"])


@migrations()
def m003_account_pool_state(db: sqlite_utils.Database) -> None:
    accounts = db["accounts"]
    accounts.add_column("quota", str)  # JSON: the last rate-limit snapshot
    accounts.add_column("refresh_error", str)  # a permanent refresh failure
    accounts.add_column("cf_clearance", str)
    # The write-ahead marker of a token refresh: set (and committed) before the refresh token is
    # sent, cleared in the same commit that stores its successor. Found set at start-up, it means
    # the process died mid-refresh (see core/accounts/tokens.py).
    accounts.add_column("refresh_started_at", float)
    accounts.add_column("refresh_owner", str)


@migrations()
def m004_request_bodies(db: sqlite_utils.Database) -> None:
    # Kept apart from request_log so the totals and series never read past big bodies.
    db["request_bodies"].create(
        {"request_id": str, "ts": float, "request": str, "response": str, "truncated": int},
        pk="request_id",
    )
    db["request_bodies"].create_index(["ts"])


@migrations()
def m009_providers(db: sqlite_utils.Database) -> None:
    # API-key providers (core/providers): the providers, their keys, the model routes, and which
    # provider served each logged request.
    db["providers"].create(
        {
            "id": str,
            "kind": str,
            "name": str,
            "base_url": str,
            "wire": str,
            "enabled": int,
            "headers": str,  # JSON object
            "manual_models": str,  # JSON list of model ids
            "fetched_models": str,  # JSON list of {id, display_name?, context_window?, ...}
            "models_fetched_at": float,
            "models_error": str,
            "position": int,
            "created_at": float,
            "updated_at": float,
        },
        pk="id",
        not_null={"id", "kind", "base_url", "wire"},
    )
    db["provider_keys"].create(
        {
            "id": str,
            "provider_id": str,
            "key": str,
            "label": str,
            "status": str,
            "cooldown_until": float,
            "last_error": str,
            "last_used_at": float,
            "requests": int,
            "failures": int,
            "added_at": float,
        },
        pk="id",
        not_null={"id", "provider_id", "key", "status"},
        foreign_keys=[("provider_id", "providers", "id")],
    )
    db["provider_keys"].create_index(["provider_id"])
    db["model_routes"].create({"position": int, "pattern": str, "targets": str}, pk="position")
    db["request_log"].add_column("provider", str)
