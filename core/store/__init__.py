"""SQLite persistence (sqlite-utils): accounts and the request/usage log."""
