"""Alembic migrations: every schema change, on SQLite and PostgreSQL alike."""
