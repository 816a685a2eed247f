"""Fixtures of the reliability suite: the API helpers of tests/api and the adapters' `engine` (SQLite and
PostgreSQL), shared rather than copied."""

from __future__ import annotations

from tests.adapters.conftest import engine
from tests.api.conftest import api, db_state

__all__ = ["api", "db_state", "engine"]
