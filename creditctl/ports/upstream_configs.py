"""Upstream connection configs (the seed system's HaierConfig): stored with their secrets sealed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class StoredConfig:
    """A named config as stored: secret fields hold sealed text, never plaintext."""

    name: str
    kind: str
    document: dict[str, Any]
    is_active: bool
    created_at: datetime
    updated_at: datetime


class UpstreamConfigRepository(Protocol):
    def get(self, name: str) -> StoredConfig | None: ...

    def put(self, config: StoredConfig) -> None:
        """Insert or replace; making one active deactivates the others of its kind.

        Forgets the config's stored upstream token in the same transaction: a token obtained with the
        old settings is never used with the new ones."""
        ...

    def reseal(self, name: str, document: dict[str, Any]) -> None:
        """Store the same document sealed anew (key rotation): not a change, updated_at and token stay."""
        ...

    def all(self) -> list[StoredConfig]: ...

    def active(self, kind: str) -> StoredConfig | None: ...
