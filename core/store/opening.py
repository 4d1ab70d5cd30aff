"""Opening the configured database: SQLite in the data folder unless ``store.url`` names a
PostgreSQL server."""

from __future__ import annotations

from core.settings import Settings
from core.store.db import Database

SCHEMES = ("postgresql://", "postgres://")


def open_database(cfg: Settings) -> Database:
    """Blocking (connects, migrates): call off the event loop."""
    url = cfg.store.url
    if not url:
        return Database(cfg.db_path)
    if not url.startswith(SCHEMES):
        raise ValueError("store.url must be a postgresql:// URL (or null for SQLite in the data folder)")
    from core.store.postgres import PostgresDatabase  # psycopg is loaded only by those who use it

    return PostgresDatabase(url, cfg.store.pool_size)
