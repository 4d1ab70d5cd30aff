"""SQL written once for both dialects, as psycopg receives it (core/store/pg_sql.py); and the
store's URL never shown with its password."""

from __future__ import annotations

import pytest

from core.store.pg_sql import column_type, literal, to_psycopg
from core.store.postgres import describe_url


@pytest.mark.parametrize("sql, named, expected", [
    ("SELECT * FROM t WHERE a = ? AND b > ?", False, "SELECT * FROM t WHERE a = %s AND b > %s"),
    ("SELECT '?' AS q, \"we?rd\" FROM t WHERE a = ?", False, "SELECT '?' AS q, \"we?rd\" FROM t WHERE a = %s"),
    ("SELECT 'it''s ?' WHERE x LIKE ? ESCAPE '\\'", False, "SELECT 'it''s ?' WHERE x LIKE %s ESCAPE '\\'"),
    ("SELECT 100 % 7, '50%' -- a ? here\nWHERE a = ?", False, "SELECT 100 %% 7, '50%%' -- a ? here\nWHERE a = %s"),
    ("/* ? */ UPDATE t SET a = :a WHERE id = :id AND c = 'x:y' AND d = e::text", True,
     "/* ? */ UPDATE t SET a = %(a)s WHERE id = %(id)s AND c = 'x:y' AND d = e::text"),
])  # fmt: skip
def test_placeholders_outside_quotes_and_comments_only(sql: str, named: bool, expected: str) -> None:
    assert to_psycopg(sql, named) == expected


def test_column_types_follow_sqlite_utils() -> None:
    assert [column_type(t) for t in (str, int, float, bool, bytes, dict, "TEXT", "integer", "REAL", "blob")] == [
        "TEXT", "BIGINT", "DOUBLE PRECISION", "BIGINT", "BYTEA", "TEXT", "TEXT", "BIGINT", "DOUBLE PRECISION", "BYTEA"]  # fmt: skip
    with pytest.raises(ValueError, match="no PostgreSQL counterpart"):
        column_type(set)
    assert [literal(v) for v in (None, True, 3, 1.5, "it's")] == ["NULL", "1", "3", "1.5", "'it''s'"]


def test_the_store_url_is_described_without_its_password() -> None:
    shown = describe_url("postgresql://proxy:s3cr%2Ft@db.internal:5433/codex?sslmode=require")
    assert shown == "PostgreSQL proxy@db.internal:5433/codex" and "s3cr" not in shown
    assert describe_url("postgresql:///codex") == "PostgreSQL localhost/codex"
    assert "unreadable" in describe_url("postgresql://a b c")
