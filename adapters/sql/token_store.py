"""Upstream tokens shared through the database: one token per config for every thread and process.

Single flight in two steps: a lock per config inside the process, then a lease row across processes;
the lease holder fetches (with no database lock held), the others poll the row for the new token."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update

from adapters.sql.leases import ensure_row, take_lease
from adapters.sql.tables import upstream_tokens
from creditctl.ports.secret_box import SecretBox, SecretUnreadable
from creditctl.ports.token_store import Token

_t = upstream_tokens.c


class SqlTokenStore:
    def __init__(
        self,
        engine: Engine,
        box: SecretBox,
        *,
        lease_s: float = 35.0,
        poll_s: float = 0.05,
        wait_s: float = 40.0,
    ) -> None:
        self._engine = engine
        self._box = box
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._wait_s = wait_s
        self._holder = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def current(self, config_name: str) -> Token | None:
        return self._open_stored(config_name)[1]

    def _open_stored(self, config_name: str) -> tuple[str | None, Token | None]:
        """(the sealed text as stored, the token it opens to); None for what is missing or unreadable."""
        with self._engine.connect() as conn:
            row = conn.execute(select(upstream_tokens).where(_t.config_name == config_name)).first()
            conn.rollback()
        if row is None or row.token is None or row.expires_at is None:
            return None, None
        try:
            value = self._box.open(row.token)
        except SecretUnreadable:
            return row.token, None
        return row.token, Token(value=value, expires_at=row.expires_at, scheme=row.scheme or "Bearer")

    def obtain(
        self, config_name: str, fetch: Callable[[], Token], *, refresh_before_s: float, now: datetime
    ) -> Token:
        seen = self.current(config_name)
        if seen is not None and seen.valid_for(now, refresh_before_s):
            return seen
        with self._lock_for(config_name):
            latest = self.current(config_name)
            if latest is not None and (latest.valid_for(now, refresh_before_s) or _newer(latest, seen, now)):
                return latest
            return self._fetch_or_wait(config_name, fetch, seen=latest, now=now)

    def invalidate(self, config_name: str, value: str) -> None:
        sealed, current = self._open_stored(config_name)
        if current is None or current.value != value:
            return
        with self._engine.connect() as conn:
            # Only if the row still holds that very sealed text: a token stored meanwhile is kept.
            conn.execute(
                update(upstream_tokens)
                .where(_t.config_name == config_name, _t.token == sealed)
                .values(token=None, expires_at=None, updated_at=_utcnow())
            )
            conn.commit()

    def _fetch_or_wait(
        self, name: str, fetch: Callable[[], Token], *, seen: Token | None, now: datetime
    ) -> Token:
        deadline = time.monotonic() + self._wait_s
        while True:
            if self._take(name, now):
                # Another instance may have stored a token and ended its lease between our read and
                # our lease: use that token instead of fetching a second one.
                latest = self.current(name)
                if _newer(latest, seen, now):
                    assert latest is not None
                    self._release(name)
                    return latest
                try:
                    token = fetch()
                except BaseException:
                    self._release(name)
                    raise
                self._store(name, token)
                return token
            time.sleep(self._poll_s)
            latest = self.current(name)
            if _newer(latest, seen, now):
                assert latest is not None
                return latest
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {self._wait_s:.0f}s for another instance's token fetch")
            now = _utcnow()

    def _take(self, name: str, now: datetime) -> bool:
        with self._engine.connect() as conn:
            ensure_row(conn, upstream_tokens, {"config_name": name, "updated_at": now})
            taken = take_lease(
                conn, upstream_tokens, name, self._holder, now, now + timedelta(seconds=self._lease_s)
            )
            conn.commit()
        return taken

    def _store(self, name: str, token: Token) -> None:
        """Only while we still hold the lease: a config change drops the row (and the lease), so a
        token fetched under the old settings is handed to its caller but never stored for the new."""
        with self._engine.connect() as conn:
            conn.execute(
                update(upstream_tokens)
                .where(_t.config_name == name, _t.lease_holder == self._holder)
                .values(
                    token=self._box.seal(token.value),
                    scheme=token.scheme,
                    expires_at=token.expires_at,
                    updated_at=_utcnow(),
                    lease_holder=None,
                    lease_until=None,
                )
            )
            conn.commit()

    def _release(self, name: str) -> None:
        with self._engine.connect() as conn:
            conn.execute(
                update(upstream_tokens)
                .where(_t.config_name == name, _t.lease_holder == self._holder)
                .values(lease_holder=None, lease_until=None)
            )
            conn.commit()

    def _lock_for(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def reseal_all(self) -> int:
        """Re-encrypt every stored token under the newest key (part of key rotation)."""
        count = 0
        with self._engine.connect() as conn:
            for row in conn.execute(select(_t.config_name, _t.token).where(_t.token.is_not(None))).all():
                conn.execute(
                    update(upstream_tokens)
                    .where(_t.config_name == row.config_name)
                    .values(token=self._box.reseal(row.token))
                )
                count += 1
            conn.commit()
        return count


def _newer(latest: Token | None, seen: Token | None, now: datetime) -> bool:
    """Another caller stored a token since we looked, and it is usable now."""
    if latest is None or not latest.valid_for(now, 0):
        return False
    return seen is None or latest.value != seen.value


def _utcnow() -> datetime:
    """This instance's clock, for token expiry only: a skew of minutes is absorbed by the 10-minute early
    refresh and the refresh on a 401 (no money depends on it; moving it to the database is noted)."""
    from datetime import UTC

    return datetime.now(UTC)  # instance clock, token expiry only
