"""Versioned schema migrations (sqlite-utils ``Migrations``); append new steps, never edit old ones."""

from __future__ import annotations

import json

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
def m006_client_state(db: sqlite_utils.Database) -> None:
    # What the proxy learnt about itself and keeps across restarts (the release feed's last answer).
    db["client_state"].create({"key": str, "value": str, "updated_at": float}, pk="key")


@migrations()
def m007_account_cookie_jars(db: sqlite_utils.Database) -> None:
    # Every cookie the backend sets is kept per account (core/accounts/cookies.py), not only
    # Cloudflare's clearance: a stored clearance becomes the jar's first cookie, for the domain
    # chatgpt.com sets it on.
    accounts = db["accounts"]
    accounts.add_column("cookies", str)
    for row in list(accounts.rows_where("cf_clearance IS NOT NULL AND cf_clearance != ''", select="id, cf_clearance")):
        jar = [["cf_clearance", row["cf_clearance"], "chatgpt.com", False, "/", None, True]]
        accounts.update(row["id"], {"cookies": json.dumps(jar)})
    accounts.transform(drop={"cf_clearance"})
