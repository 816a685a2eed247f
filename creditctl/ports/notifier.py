"""The notifier port: how a signed webhook body reaches its receiver (HTTP, outside any transaction)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from creditctl.domain.errors import CreditctlError


class DeliveryFailed(CreditctlError):
    """Nothing usable came back (refused address, connection error, timeout): the delivery is retried."""

    code = "delivery.failed"


class Notifier(Protocol):
    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST `body` once, following no redirect; return the HTTP status. Raises DeliveryFailed when no
        status came back (the receiver may or may not have processed it: delivery is at least once)."""
        ...
