"""SQL adapter: SQLAlchemy Core tables, repositories and the unit of work (SQLite and PostgreSQL)."""
