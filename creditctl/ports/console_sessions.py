"""Console sessions kept by the server: a signed cookie alone would stay valid after sign-out."""

from __future__ import annotations

from typing import Protocol


class ConsoleSessions(Protocol):
    def open(self, id_hash: str, key_id: int, *, lifetime_s: float) -> None:
        """Record a new session ending lifetime_s from now (and forget the ones that have ended)."""

    def key_of(self, id_hash: str) -> int | None:
        """The key id of an open, unexpired session; None when signed out, expired or unknown."""

    def close(self, id_hash: str) -> None:
        """End the session (sign-out); ending an unknown one is not an error."""
