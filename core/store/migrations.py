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
def m005_proxies(db: sqlite_utils.Database) -> None:
    # The per-account proxy pool (core/accounts/proxy_pool.py). A proxy's password is stored like an
    # account's tokens: in this file only, never shown back.
    db["proxies"].create(
        {
            "id": str,
            "name": str,
            "scheme": str,
            "host": str,
            "port": int,
            "username": str,
            "password": str,
            "enabled": int,
            "added_at": float,
            "updated_at": float,
            "status": str,  # health: unknown | ok | unreachable
            "checked_at": float,
            "latency_ms": float,
            "exit_ip": str,
            "last_error": str,
        },
        pk="id",
        not_null={"id", "scheme", "host", "port", "enabled", "status"},
        defaults={"enabled": 1, "status": "unknown"},
    )
    # One row per account not on the global default; it goes when its account goes. proxy_id is
    # the chosen proxy (specific) or the one automatic mode keeps; deleting a proxy is checked in code.
    db.execute(
        "CREATE TABLE account_proxies (account_id TEXT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE, "
        "mode TEXT NOT NULL, proxy_id TEXT, updated_at FLOAT)"
    )


@migrations()
def m006_client_state(db: sqlite_utils.Database) -> None:
    # What the proxy learnt about itself and keeps across restarts (the release feed's last answer).
    db["client_state"].create({"key": str, "value": str, "updated_at": float}, pk="key")


@migrations()
def m008_client_keys_and_cost(db: sqlite_utils.Database) -> None:
    # Client access keys: only a digest of each key is kept; spent_* count the current budget
    # period (from period_start), written behind the requests by a writer thread.
    db["client_keys"].create(
        {
            "id": str,
            "digest": str,
            "label": str,
            "created_at": float,
            "expires_at": float,
            "enabled": int,
            "allowed_models": str,  # JSON list of names or globs; NULL: every model
            "budget_limit": float,
            "budget_unit": str,
            "budget_period": str,
            "max_concurrency": int,
            "spent_tokens": int,
            "spent_usd": float,
            "period_start": float,
            "last_used_at": float,
        },
        pk="id",
        not_null={"id", "digest"},
        defaults={"enabled": 1, "spent_tokens": 0, "spent_usd": 0.0, "period_start": 0.0},
    )
    log = db["request_log"]
    log.add_column("key_id", str)  # the client key that made the request; NULL: the proxy key, or none
    log.add_column("cost_usd", float)  # estimated from the pricing table
    log.add_column("cost_basis", str)  # "api_equivalent": a ChatGPT-account turn, priced as on the API
    log.create_index(["key_id", "ts"])
