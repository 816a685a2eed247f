"""Adapter fixtures: one `engine` fixture that runs a test on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """A freshly migrated database: SQLite (a copied template file) or PostgreSQL (truncated after)."""
    return request.getfixturevalue(f"{request.param}_engine")  # type: ignore[no-any-return]
