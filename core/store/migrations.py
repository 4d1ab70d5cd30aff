"""Versioned schema migrations (sqlite-utils ``Migrations``); append new steps, never edit old ones.

The same steps run on SQLite and on PostgreSQL (``store.url``): each is handed sqlite-utils'
Database API — the real one on SQLite, core/store/pg_connection.py's ``PgConnection`` on
PostgreSQL — inside a transaction, and the applied steps are recorded in ``_sqlite_migrations``
on either. (Instances starting together on one PostgreSQL take turns: core/store/postgres.py.)

Writing a step (and any store module) that runs on both:

* Use the table API: ``db["t"].create({...}, pk=..., not_null=..., defaults=..., foreign_keys=
  [("col", "other", "id")])``, ``add_column(name, type, not_null_default=...)``,
  ``create_index([...], unique=...)``; and for data ``insert``/``insert_all`` (``replace``,
  ``ignore``), ``upsert``, ``update``, ``delete_where``, ``rows_where``, ``count_where``. Column
  types: ``str``, ``int``, ``float``, ``bytes`` (a ``bool`` is stored as an int, a dict or list as
  JSON text, as sqlite-utils does). An ``int`` primary key numbers its rows by itself on both.
* Raw SQL (``db.execute``/``db.query``/``db.executemany``) in the common subset: ``?``
  placeholders (or ``:name``), ``CASE WHEN … THEN 1 ELSE 0 END`` rather than summing a
  comparison, ``FLOOR(x)`` rather than ``CAST(x AS INTEGER)`` (PostgreSQL rounds),
  ``LOWER(col) LIKE ?`` (LIKE ignores case only on SQLite), no ``INSERT OR REPLACE`` / ``PRAGMA``
  / ``rowid`` / ``AUTOINCREMENT`` / ``strftime``, and lower_snake_case names that are no SQL
  keyword (``user``, ``order``, ``group``, ``default``, ``end``…).
* ``table.transform()`` takes ``types``, ``rename`` and ``drop`` on both (PostgreSQL alters the
  table in place); its other options, ``alter=True``, ``extracts`` and tables created by a first
  ``insert`` raise on PostgreSQL: write the ``ALTER TABLE`` for such a change, in the common subset.
* Rows numbered by hand in an ``int`` primary key: insert them through the table API (it moves
  PostgreSQL's counter past them, as SQLite's rowid does by itself), not with raw ``INSERT``.
* Never reach for the driver below (``db.conn``, e.g. ``db.conn.executemany``): it is sqlite3 on one
  side only; ``db.executemany(sql, rows)`` is the portable call.

tests/postgres/test_store.py runs the whole chain, and the store modules, on a real server.
"""

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
def m007_account_cookie_jars(db: sqlite_utils.Database) -> None:
    # Every cookie the backend sets is kept per account (core/accounts/cookies.py), not only
    # Cloudflare's clearance: a stored clearance becomes the jar's first cookie, for the domain
    # chatgpt.com sets it on.
    accounts = db["accounts"]
    accounts.add_column("cookies", str)
    for row in list(accounts.rows_where("cf_clearance IS NOT NULL AND cf_clearance != ''", select="id, cf_clearance")):
        jar = [["cf_clearance", row["cf_clearance"], "chatgpt.com", False, "/", None, True]]
        accounts.update(row["id"], {"cookies": json.dumps(jar)})
    if isinstance(db, sqlite_utils.Database):
        # In place (SQLite 3.35+): sqlite-utils' rebuild of the table would fire the ON DELETE
        # CASCADE of the tables that reference accounts.
        db.execute("ALTER TABLE accounts DROP COLUMN cf_clearance")
    else:
        accounts.transform(drop={"cf_clearance"})  # PostgreSQL: an ALTER TABLE as well


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
            "sort_order": int,
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
            "api_key": str,
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
        not_null={"id", "provider_id", "api_key", "status"},
        foreign_keys=[("provider_id", "providers", "id")],
    )
    db["provider_keys"].create_index(["provider_id"])
    db["model_routes"].create({"sort_order": int, "pattern": str, "targets": str}, pk="sort_order")
    db["request_log"].add_column("provider", str)


@migrations()
def m011_session_affinity(db: sqlite_utils.Database) -> None:
    # Which account serves a conversation, for every instance sharing the store and across restarts
    # (core/accounts/affinity.py). "conversation" is a digest of the client's conversation key.
    db["session_affinity"].create({"conversation": str, "account_id": str, "expires_at": float}, pk="conversation",
                                  not_null={"account_id"})
    db["session_affinity"].create_index(["expires_at"])


@migrations()
def m012_client_key_spend_versions(db: sqlite_utils.Database) -> None:
    # Several instances add to one key's counters (core/store/client_keys.py): spend_version counts
    # the writes, so each instance tells a newer total from an older one; spend_restarts counts the
    # restarts (a reset, a new budget period), so an increment charged before one is dropped.
    db["client_keys"].add_column("spend_version", int, not_null_default=0)
    db["client_keys"].add_column("spend_restarts", int, not_null_default=0)
