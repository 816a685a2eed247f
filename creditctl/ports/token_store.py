"""The token store port: one upstream access token per connection config, shared by every caller.

Tokens are shared so that concurrent callers (threads of one process, or instances sharing one
database) fetch one token per expiry instead of stampeding the upstream's token endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Token:
    """An upstream access token.

    `value` is secret and never shown by repr; `expires_at` is timezone-aware UTC; `scheme` says how
    the token is sent: "Bearer" (`Authorization: Bearer <value>`) or "none" (the bare value).
    """

    value: str = field(repr=False)
    expires_at: datetime
    scheme: str = "Bearer"

    def __post_init__(self) -> None:
        if not self.value:
            raise ValueError("a token needs a value")
        offset = self.expires_at.utcoffset()
        if offset is None or offset != timedelta(0):
            raise ValueError("expires_at must be timezone-aware UTC")

    def valid_for(self, now: datetime, seconds: float) -> bool:
        """True when the token stays valid for more than `seconds` after `now` (UTC)."""
        return (self.expires_at - now).total_seconds() > seconds

    def authorization(self) -> str:
        """The Authorization header value: "Bearer <value>", or the bare value for scheme "none"."""
        return self.value if self.scheme == "none" else f"{self.scheme} {self.value}"


class TokenStore(Protocol):
    """Where upstream tokens live between calls: memory for one process, a database row for many."""

    def current(self, config_name: str) -> Token | None:
        """The stored token of `config_name`, or None. It may be expired: callers check `expires_at`."""
        ...

    def obtain(
        self,
        config_name: str,
        fetch: Callable[[], Token],
        *,
        refresh_before_s: float,
        now: datetime,
    ) -> Token:
        """A token of `config_name` that stays valid for more than `refresh_before_s` after `now` (UTC).

        Returns the stored token when it qualifies. Otherwise `fetch` is called single-flight: among
        concurrent callers sharing the store, one calls `fetch`, stores its token and returns it; the
        others wait for that fetch and return the token it stored without calling `fetch` themselves,
        even when that token is shorter-lived than `refresh_before_s` (so a short-lived upstream token
        does not cause a fetch per caller). Waiting is bounded only by the fetch in progress: `fetch`
        must bound itself by its caller's deadline.

        Whatever `fetch` raises propagates unchanged to the caller that ran it, and nothing is stored.
        A caller that was waiting on a failed fetch either re-raises that same error or runs `fetch`
        itself (the store's choice); it never returns a token that does not exist.
        """
        ...

    def invalidate(self, config_name: str, value: str) -> None:
        """Forget the stored token of `config_name` if it is still `value` (the upstream refused it).

        A newer token stored meanwhile by another caller is kept. Never raises for an unknown name.
        """
        ...
