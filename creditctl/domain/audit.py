"""The audit trail: who changed what, when, as canonical JSON, linked in a SHA-256 chain once sealed.

An event is written without a hash, in the transaction of the change it records (so no writer waits for
another). A sealer later links committed events in the order it finds them: each seal's hash is
SHA-256 over the previous seal's hash (64 hex digits, "0" * 64 for the first) followed by the event's
canonical JSON, both as UTF-8 bytes. That is all an outside checker needs (README, "Audit trail")."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from creditctl.domain.api_key import ApiKey

GENESIS = "0" * 64
SUBJECT_COLUMNS = ("customer_code", "sale_group_code", "order_id")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: an API key (name, role, its id and the owner it is issued to), the CLI
    ("cli:<user>") or creditctl itself. The owner is the person: an auditor sees two keys of one person as
    one person."""

    name: str
    role: str
    request_id: str | None = None
    owner: str | None = None
    key_id: int | None = None


SYSTEM = Actor(name="creditctl", role="system")


def key_actor(key: ApiKey, request_id: str | None = None) -> Actor:
    """An API key acting (name and role), in the request `request_id`."""
    return Actor(name=key.name, role=key.role.value, request_id=request_id, owner=key.owner, key_id=key.id)


def cli_actor(user: str) -> Actor:
    """An operator at the command line."""
    return Actor(name=f"cli:{user}", role="operator", owner=f"cli:{user}")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An event to append, handed to a store that changes state outside the unit of work (webhook
    subscriptions): the store appends it in the transaction of the change, so it commits with the
    change or not at all. `at` is the database's time the change was made at."""

    type: str
    at: datetime
    actor: Actor
    subject: Mapping[str, Any]
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """A stored event; `position`, `prev_hash` and `hash` are None until it is sealed."""

    seq: int
    payload: str
    position: int | None = None
    prev_hash: str | None = None
    hash: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.data:
            object.__setattr__(self, "data", json.loads(self.payload))


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters for reading sealed events; every one is optional. `after_position` is the cursor."""

    customers: frozenset[str] | None = None  # a limited key's scope: only these customers' events
    customer_code: str | None = None
    sale_group_code: str | None = None
    order_id: str | None = None
    type: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_position: int = 0
    limit: int = 100
    # Newest first: the events before `before_position` (None: from the head), highest position first.
    newest_first: bool = False
    before_position: int | None = None


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, frozenset | set):
        return sorted(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"not JSON-serialisable in an audit event: {type(value).__name__}")


def iso(moment: datetime) -> str:
    """UTC, microseconds, 'Z': one spelling for every time in the trail."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 as is; Decimals and times as strings: the same bytes every time."""
    return json.dumps(value, default=_plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_payload(
    type_: str,
    *,
    at: datetime,
    actor: Actor,
    subject: Mapping[str, Any],
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> str:
    """The canonical JSON an event is stored and hashed as."""
    return canonical_json(
        {
            "type": type_,
            "at": at,
            "actor": _actor_fields(actor),
            "request_id": actor.request_id,
            "subject": {k: v for k, v in subject.items() if v is not None},
            "before": before,
            "after": after,
        }
    )


def _actor_fields(actor: Actor) -> dict[str, Any]:
    """Name and role; the owner and key id where there are (events from before owners keep their bytes)."""
    fields: dict[str, Any] = {"name": actor.name, "role": actor.role}
    if actor.owner is not None:
        fields["owner"] = actor.owner
    if actor.key_id is not None:
        fields["key_id"] = actor.key_id
    return fields


def chain_hash(prev_hash: str, payload: str) -> str:
    """SHA-256 over the previous hash (hex) and the event's canonical JSON, as UTF-8."""
    return hashlib.sha256((prev_hash + payload).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What `verify` found: how many seals checked, the head, the first broken link (or None)."""

    checked: int
    head_position: int
    head_hash: str
    unsealed: int
    oldest_unsealed_age_s: float | None = None  # by the database's clock; None: all sealed
    complete: bool = True  # False: a time budget ran out after `checked` events (none broken so far)
    broken_seq: int | None = None
    broken_position: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


class ChainWalker:
    """Walks seals in position order and stops at the first link that does not hold."""

    def __init__(self) -> None:
        self.position = 0
        self.hash = GENESIS
        self.problem: tuple[int | None, int | None, str] | None = None

    def feed(self, events: Iterable[tuple[int, int, str | None, str, str, dict[str, Any] | None]]) -> bool:
        """(position, seq, payload or None if the row is gone, prev_hash, hash, columns); False if broken."""
        for position, seq, payload, prev_hash, hash_, columns in events:
            problem = self._check(position, seq, payload, prev_hash, hash_, columns)
            if problem is not None:
                self.problem = (position, seq, problem)
                return False
            self.position, self.hash = position, hash_
        return True

    def _check(
        self,
        position: int,
        seq: int,
        payload: str | None,
        prev_hash: str,
        hash_: str,
        columns: dict[str, Any] | None,
    ) -> str | None:
        if position != self.position + 1:
            return f"seal {self.position + 1} is missing (next seal is {position})"
        if prev_hash != self.hash:
            return "its previous hash is not the hash of the seal before it"
        if payload is None:
            return "the event row is missing"
        if chain_hash(prev_hash, payload) != hash_:
            return "its content does not match its hash (edited, or swapped with another)"
        return _columns_problem(payload, columns or {})


def _columns_problem(payload: str, columns: dict[str, Any]) -> str | None:
    """The filter columns are copies of the payload's fields: a copy that differs was edited."""
    data = json.loads(payload)
    expected = {
        "type": data.get("type"),
        "actor": data.get("actor", {}).get("name"),
        "at": data.get("at"),
        **{k: data.get("subject", {}).get(k) for k in SUBJECT_COLUMNS},
    }
    for name, value in expected.items():
        if name in columns and columns[name] != value:
            return f"its {name} column was changed (the hashed event says {value!r})"
    return None
