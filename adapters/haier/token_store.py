"""Tokens kept in process memory: the TokenStore for one process (tests, SQLite, a single instance)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from creditctl.ports.token_store import Token


@dataclass
class _Slot:
    """Per-config fetch lock plus the outcome of the last fetch, so waiters can share it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    fetches: int = 0
    last_error: BaseException | None = None


class InMemoryTokenStore:
    """Thread-safe TokenStore: single-flight per config name with a lock and a double-check.

    A caller that waited while another ran `fetch` never fetches itself: it returns the token that
    fetch stored, or re-raises the error that fetch raised (the same exception object).
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._tokens: dict[str, Token] = {}
        self._slots: dict[str, _Slot] = {}

    def current(self, config_name: str) -> Token | None:
        with self._guard:
            return self._tokens.get(config_name)

    def obtain(
        self,
        config_name: str,
        fetch: Callable[[], Token],
        *,
        refresh_before_s: float,
        now: datetime,
    ) -> Token:
        token = self.current(config_name)
        if token is not None and token.valid_for(now, refresh_before_s):
            return token
        slot = self._slot(config_name)
        seen = slot.fetches
        with slot.lock:
            token = self.current(config_name)
            if slot.fetches != seen:  # someone fetched while we waited: share its outcome
                if slot.last_error is not None:
                    raise slot.last_error
                if token is not None:
                    return token
            # else: first in line, or the shared token was invalidated meanwhile
            if token is not None and token.valid_for(now, refresh_before_s):
                return token
            return self._fetch(config_name, slot, fetch)

    def invalidate(self, config_name: str, value: str) -> None:
        with self._guard:
            token = self._tokens.get(config_name)
            if token is not None and token.value == value:
                del self._tokens[config_name]

    def _slot(self, config_name: str) -> _Slot:
        with self._guard:
            return self._slots.setdefault(config_name, _Slot())

    def _fetch(self, config_name: str, slot: _Slot, fetch: Callable[[], Token]) -> Token:
        try:
            token = fetch()
        except BaseException as exc:
            slot.last_error = exc
            slot.fetches += 1
            raise
        with self._guard:
            self._tokens[config_name] = token
        slot.last_error = None
        slot.fetches += 1
        return token
