"""Persistence: accounts, affinity and the request/usage log, in SQLite (the default) or a
PostgreSQL shared by several instances (core/store/db.py). The only package that speaks SQL."""
