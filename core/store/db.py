"""The store's database: a SQLite file in the data folder (the default: one instance), or
PostgreSQL (``PostgresDatabase`` in core/store/postgres.py, when ``store.url`` names one: several
instances sharing one pool). core/store/opening.py picks.

Both hand out the same API — ``conn()`` and ``transaction()`` give sqlite-utils' Database API,
``events`` tells the other instances, ``refresh_locks`` serializes token refreshes — and every
module of core/store is written once against it (core/store/migrations.py says how).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, Union

import sqlite_utils

from core.store.events import Events
from core.store.locks import LocalRefreshLocks
from core.store.migrations import migrations

if TYPE_CHECKING:
    from core.store.pg_connection import PgConnection


class SqliteConnection(sqlite_utils.Database):
    """sqlite-utils' Database, plus the one call the store needs that it lacks."""

    dialect = "sqlite"

    def executemany(self, sql: str, rows: Sequence[Any]) -> None:
        self.conn.executemany(sql, rows)


Connection: TypeAlias = Union[SqliteConnection, "PgConnection"]  # sqlite-utils' Database API, either way


def connect(path: Path) -> SqliteConnection:
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    db = SqliteConnection(conn)
    db.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed refresh token must survive power loss, not only a process crash.
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    return db


class Database:
    """SQLite: each thread gets its own connection to the same file; migrations run once at open.
    Only this process uses the file, so the refresh lock is the write-ahead marker alone and there
    is nobody to notify."""

    dialect = "sqlite"
    shared = False  # True where other instances use the same database at the same time

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.events = Events()
        self.refresh_locks: Any = LocalRefreshLocks()
        migrations.apply(self.conn())

    def describe(self) -> str:
        return f"SQLite {self.path}"

    def conn(self) -> Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = connect(self.path)
            self._local.durable = True
        return db

    @contextlib.contextmanager
    def transaction(self, durable: bool = True) -> Iterator[Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` on this thread's connection: a read-then-write that no
        other writer can interleave with, durable (synchronous=FULL) once the block exits.
        ``durable=False`` (the request log): survives a crash of the process, maybe not a power
        loss (WAL with synchronous=NORMAL), for far fewer fsyncs."""
        db = self.conn()
        if self._local.durable != durable:
            db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._local.durable = durable
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @contextlib.contextmanager
    def announcing(self, topic: str) -> Iterator[Connection]:
        """A management change: one transaction, and the other instances told ``topic`` when it commits."""
        with self.transaction() as db:
            yield db
            self.events.publish(db, topic)

    def close(self) -> None:
        self.events.close()
