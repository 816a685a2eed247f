"""Idempotency keys of creating calls: one stored record per (key owner, route, Idempotency-Key).

A record holds a fingerprint of the request (what a retry must repeat) and, once the call succeeded,
its answer (status, body, a few headers), replayed to a retry with the same key and the same request.
It is written in the same transaction as the call's change (see creditctl.ports.idempotency), so a
change is never stored without the record that stops a retry from making it again. The answer follows
in a short transaction of its own right after: a crash in between leaves a record without an answer,
which refuses a retry (IdempotencyAnswerLost) rather than apply it twice."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import uuid4

from creditctl.domain.errors import Conflict

RETENTION = timedelta(hours=24)  # a record is kept (and a retry replayed) this long, then pruned
KEY_MAX_LENGTH = 255


@dataclass
class Claim:
    """One request's hold on an idempotency key. `token` tells this request's record from another's;
    `written` turns True once a transaction of this request committed the record."""

    owner: str  # who the key belongs to: "api-key:<id>"
    route: str  # "POST /v1/rule-sets/5/publish"
    key: str
    fingerprint: str  # SHA-256 of the request's query and body, canonical
    created_at: datetime  # the database's time when the request looked the key up
    token: str = field(default_factory=lambda: uuid4().hex)
    written: bool = False

    @property
    def key_hash(self) -> str:
        """The record's primary key: routes can be long, keys up to 255 characters."""
        return record_key(self.owner, self.route, self.key)


def record_key(owner: str, route: str, key: str) -> str:
    return hashlib.sha256("\x00".join((owner, route, key)).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """What the first request answered: replayed as it was (`sealed`: the body is encrypted at rest,
    for answers that show a secret once)."""

    status: int
    body: str
    headers: dict[str, str]
    sealed: bool = False


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    fingerprint: str
    token: str
    created_at: datetime
    answer: StoredAnswer | None  # None: the call is in progress (or its answer was lost)

    def expired(self, now: datetime) -> bool:
        return self.created_at + RETENTION <= now


class IdempotencyKeyReused(Conflict):
    """The same key with another request: refused, as a settlement id reused with another amount is."""

    code = "conflict.idempotency_key_reused"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"Idempotency-Key {key!r} was already used for another request to this route (another body or "
            "query); a retry must repeat the request exactly, a new request needs a new key",
            field="Idempotency-Key",
        )


class IdempotencyKeyInFlight(Conflict):
    """A request with the same key is still running: retry in a moment to get its answer."""

    code = "conflict.idempotency_in_progress"

    def __init__(self, key: str, retry_after_s: int = 1) -> None:
        super().__init__(
            f"a request with Idempotency-Key {key!r} is still in progress; retry shortly to get its answer",
            field="Idempotency-Key",
        )
        self.headers = {"Retry-After": str(retry_after_s)}


class IdempotencyAnswerLost(Conflict):
    """The first request with this key made its change, but the service stopped before it kept the
    answer: a retry is refused rather than applied twice."""

    code = "conflict.idempotency_answer_lost"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"the request with Idempotency-Key {key!r} was applied, but its answer was not kept (the service "
            "stopped in between); read the resource to see the result, and use a new key to act again",
            field="Idempotency-Key",
        )


class IdempotencyKeyTaken(Conflict):
    """Raised by a commit whose request's key another request committed first: the transaction is rolled
    back (its change undone), and the web edge replays the other request's answer instead."""

    code = "conflict.idempotency_key_taken"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"another request with Idempotency-Key {key!r} was applied first; retry to get its answer",
            field="Idempotency-Key",
        )
