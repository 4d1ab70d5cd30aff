"""The shared store: PostgreSQL (``store.url``), for several proxy instances serving one pool.

Statements go through a psycopg connection pool (``PgConnection``: the sqlite-utils API the rest of
core/store is written against); two more connections of its own per process hold the refresh
locks (core/store/locks.py) and listen for the other instances' messages (core/store/events.py).
Migrations are the same steps as on SQLite, applied under an advisory lock so that instances
starting together apply each step once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from core.store.db import Database
from core.store.events import PgEvents
from core.store.locks import NAMESPACE, AdvisoryRefreshLocks
from core.store.migrations import migrations
from core.store.pg_connection import PgConnection, configure

MIGRATION_LOCK = 0  # the second key of the advisory lock migrations run under (accounts use hashtext(id))
CONNECT_TIMEOUT_SECONDS = 30
WARM_CONNECTIONS = 4


class StoreUnavailable(RuntimeError):
    """The database named by ``store.url`` cannot be used; the message says why (never the password)."""


def describe_url(url: str) -> str:
    """``postgresql://user@host:port/dbname`` without the password, for logs and errors."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "PostgreSQL (an unreadable store.url)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"PostgreSQL {user}{parts.get('host', 'localhost')}{port}/{parts.get('dbname', '')}"


class PostgresDatabase(Database):
    """Every method of the SQLite ``Database``, on a PostgreSQL server shared with other instances."""

    dialect = "postgresql"
    shared = True

    def __init__(self, url: str, pool_size: int) -> None:  # not super().__init__: that opens a SQLite file
        self._url = url
        # Connections kept open even when idle: opening one when a state change must reach the others
        # at once costs more than the change itself.
        self._pool: ConnectionPool[Any] = ConnectionPool(url, min_size=min(pool_size, WARM_CONNECTIONS), max_size=pool_size,
                                                          kwargs={"autocommit": True},
                                                          configure=configure, open=False, name="codex-proxy-store")  # fmt: skip
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS)
        except PoolTimeout:
            self._pool.close()
            raise StoreUnavailable(f"cannot connect to {self.describe()} within {CONNECT_TIMEOUT_SECONDS}s") from None
        self._conn = PgConnection(self._pool)
        self.events = PgEvents(self._dedicated)
        self.refresh_locks = AdvisoryRefreshLocks(self._dedicated)
        self._migrate()

    def _dedicated(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        configure(conn)
        return conn

    def _migrate(self) -> None:
        with self._pool.connection() as lock:
            lock.execute("SELECT pg_advisory_lock(%s::int, %s::int)", (NAMESPACE, MIGRATION_LOCK))
            try:
                migrations.apply(self._conn)  # type: ignore[arg-type]  # the sqlite-utils API, on PostgreSQL
            finally:
                lock.execute("SELECT pg_advisory_unlock(%s::int, %s::int)", (NAMESPACE, MIGRATION_LOCK))

    def describe(self) -> str:
        return describe_url(self._url)

    def conn(self) -> PgConnection:
        return self._conn

    @contextlib.contextmanager
    def transaction(self, durable: bool = True) -> Iterator[PgConnection]:
        """One transaction on one pooled connection. ``durable=False`` (the request log) commits
        without waiting for the server's disk (synchronous_commit off, this transaction only)."""
        with self._conn.atomic() as db:
            if not durable:
                db.execute("SET LOCAL synchronous_commit = off")
            yield db

    def close(self) -> None:
        self.events.close()
        self.refresh_locks.close()
        self._pool.close()
