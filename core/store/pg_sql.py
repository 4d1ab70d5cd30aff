"""SQL written for SQLite, made acceptable to psycopg: placeholders, column types and literals.

The store writes its SQL once, in the common subset of both dialects, with SQLite's ``?`` (or
``:name``) placeholders. psycopg wants ``%s`` (``%(name)s``) and reads every ``%`` as the start of
one, so ``to_psycopg`` rewrites placeholders outside quoted text and doubles every other ``%``.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import re
import uuid
from typing import Any

# sqlite-utils' column types (Python types or SQLite type names) → PostgreSQL types. SQLite keeps
# a bool as an integer, and so does this: the same rows read back the same in both dialects.
_TYPES: dict[Any, str] = {
    str: "TEXT", int: "BIGINT", bool: "BIGINT", float: "DOUBLE PRECISION", bytes: "BYTEA", memoryview: "BYTEA",
    dict: "TEXT", list: "TEXT", tuple: "TEXT", decimal.Decimal: "DOUBLE PRECISION", uuid.UUID: "TEXT",
    datetime.datetime: "TEXT", datetime.date: "TEXT", datetime.time: "TEXT", datetime.timedelta: "TEXT",
    "text": "TEXT", "str": "TEXT", "integer": "BIGINT", "int": "BIGINT", "float": "DOUBLE PRECISION",
    "real": "DOUBLE PRECISION", "blob": "BYTEA", "bytes": "BYTEA",
}  # fmt: skip
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def column_type(kind: Any) -> str:
    key = kind.lower() if isinstance(kind, str) else kind
    if key not in _TYPES:
        raise ValueError(f"column type {kind!r} has no PostgreSQL counterpart here; use str, int, float or bytes")
    return _TYPES[key]


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: Any) -> str:
    """A column default as SQL text (DDL takes no parameters)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


@functools.lru_cache(maxsize=1024)
def to_psycopg(sql: str, named: bool = False) -> str:
    """``?`` → ``%s`` (or ``:name`` → ``%(name)s``) outside quotes and comments; ``%`` → ``%%``."""
    out: list[str] = []
    i, n = 0, len(sql)
    plain_start = 0

    def flush_plain(end: int) -> None:
        text = sql[plain_start:end].replace("%", "%%")
        out.append(_NAMED.sub(r"%(\1)s", text) if named else text.replace("?", "%s"))

    while i < n:
        ch = sql[i]
        if ch in "'\"" or sql.startswith("--", i) or sql.startswith("/*", i):
            flush_plain(i)
            if ch in "'\"":
                end = i + 1
                while end < n:
                    if sql[end] == ch:
                        if end + 1 < n and sql[end + 1] == ch:  # a doubled quote stays inside
                            end += 2
                            continue
                        break
                    end += 1
                end += 1
            elif ch == "-":
                end = sql.find("\n", i)
                end = n if end < 0 else end
            else:
                end = sql.find("*/", i + 2)
                end = n if end < 0 else end + 2
            out.append(sql[i:end].replace("%", "%%"))
            i = plain_start = end
            continue
        i += 1
    flush_plain(n)
    return "".join(out)
