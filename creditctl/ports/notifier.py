"""The notifier port: delivers outbox events (webhooks) outside the decision transaction."""

from __future__ import annotations

from typing import Any, Protocol


class Notifier(Protocol):
    def send(self, topic: str, payload: dict[str, Any], *, event_id: str) -> None:
        """Deliver one event at least once; raises on failure so the outbox retries it."""
        ...
