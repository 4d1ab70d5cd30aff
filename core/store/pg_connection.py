"""sqlite-utils' ``Database`` API on PostgreSQL: the part the store and its migrations use.

Code in core/store is written once against ``sqlite_utils.Database`` (``db["t"].rows_where(...)``,
``db.query``, ``db.execute``, ``db.atomic()``, migrations' ``create``/``add_column``…). On a
``store.url: postgresql://…`` it is handed a ``PgConnection`` instead, which runs the same calls
through a psycopg connection pool: every statement outside ``atomic()`` commits by itself, a
statement inside runs on the one connection the block holds (nested blocks are savepoints).
"""

from __future__ import annotations

import contextlib
import decimal
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from core.store.pg_sql import to_psycopg
from core.store.pg_table import PgTable

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

Params = Sequence[Any] | Mapping[str, Any] | None


class Result:
    """What ``execute`` returns: a cursor's answer, fetched whole (the connection goes back to the
    pool before the caller reads it)."""

    def __init__(self, rows: list[tuple[Any, ...]], description: Any, rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self.description = description
        self.rowcount = rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[tuple[Any, ...]]:
        rest, self._next = self._rows[self._next :], len(self._rows)
        return rest

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())


def configure(conn: psycopg.Connection[Any]) -> None:
    """Per connection: values come back as SQLite gives them (SUM of integers is an int, not a
    Decimal) and a bool goes in as the integer SQLite would store."""
    from psycopg import postgres
    from psycopg.adapt import Dumper
    from psycopg.types.numeric import NumericLoader

    class Number(NumericLoader):
        def load(self, data: Any) -> Any:
            value = super().load(data)
            if not isinstance(value, decimal.Decimal) or not value.is_finite():
                return value
            return int(value) if value == value.to_integral_value() else float(value)

    class BoolAsInt(Dumper):
        oid = postgres.types["int8"].oid

        def dump(self, obj: Any) -> bytes:
            return b"1" if obj else b"0"

    conn.adapters.register_loader("numeric", Number)
    conn.adapters.register_dumper(bool, BoolAsInt)


class PgConnection:
    """Thread-safe: each thread's ``atomic()`` block holds its own pooled connection."""

    dialect = "postgresql"

    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self._pool = pool
        self._local = threading.local()
        self.schema_cache: dict[str, Any] = {}  # per table: pks and columns (see PgTable)

    def __getitem__(self, name: str) -> PgTable:
        return PgTable(self, name)

    def table(self, name: str) -> PgTable:
        return PgTable(self, name)

    @property
    def in_transaction(self) -> bool:
        return getattr(self._local, "conn", None) is not None

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection this thread's open block holds, else one from the pool for one statement."""
        bound = getattr(self._local, "conn", None)
        if bound is not None:
            yield bound
            return
        with self._pool.connection() as conn:
            yield conn

    @contextlib.contextmanager
    def atomic(self) -> Iterator[PgConnection]:
        """A transaction (a savepoint inside another): committed when the block ends, rolled back
        when it raises."""
        bound = getattr(self._local, "conn", None)
        if bound is not None:
            with bound.transaction():
                yield self
            return
        with self._pool.connection() as conn:
            self._local.conn = conn
            try:
                with conn.transaction():
                    yield self
            finally:
                self._local.conn = None

    def execute(self, sql: str, params: Params = None) -> Result:
        named = isinstance(params, Mapping)
        with self.connection() as conn:
            # Parameters always go along (even none): only then does psycopg turn ``%%`` back into ``%``.
            cursor = conn.execute(to_psycopg(sql, named), params if params is not None else ())
            rows = cursor.fetchall() if cursor.description is not None else []
            return Result(rows, cursor.description, cursor.rowcount)

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        named = bool(rows) and isinstance(rows[0], Mapping)
        with self.connection() as conn, conn.cursor() as cursor:
            cursor.executemany(to_psycopg(sql, named), rows)

    def query(self, sql: str, params: Params = None) -> Iterator[dict[str, Any]]:
        result = self.execute(sql, params)
        if result.description is None:
            raise ValueError("query() can only be used with SQL that returns rows - use execute() for other statements")
        keys = [column.name for column in result.description]
        return (dict(zip(keys, row)) for row in result.fetchall())

    def table_names(self) -> list[str]:
        sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name"
        return [row[0] for row in self.execute(sql).fetchall()]
