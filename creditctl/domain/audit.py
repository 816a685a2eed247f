"""The audit trail: who changed what, when, as canonical JSON, linked in a SHA-256 chain once sealed.

An event is written without a hash, in the transaction of the change it records (so no writer waits for
another). A sealer later links committed events in the order it finds them: each seal's hash is
SHA-256 over the previous seal's hash (64 hex digits, "0" * 64 for the first) followed by the event's
canonical JSON, both as UTF-8 bytes. That is all an outside checker needs (README, "Audit trail").

The event's `at` in the hashed JSON is the database's time of the insert (a trigger sets the column; the
writer's own `at` is not trusted): `sealed_payload` puts it there. A sealed event may be at most
SEAL_TOLERANCE_S older than an event sealed before it (commit order: a transaction commits a moment after
its insert); an older one was held back or back-dated, and is refused, not sealed."""

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
from creditctl.domain.json_text import json_writer

GENESIS = "0" * 64
# How much older than the newest sealed event an event may be and still be sealed. An event's time is its
# INSERT's (clock_timestamp()); the insert is the last write of its transaction, so its commit follows
# within milliseconds, and the application's role ends a transaction left idle for 20 s
# (idle_in_transaction_session_timeout, `creditctl db roles`). 60 s covers an honest writer three times
# over; an event older than that was held back by its writer (or back-dated by someone who can bypass
# the trigger) and is reported instead of sealed.
SEAL_TOLERANCE_S = 60.0
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
            try:
                data = json.loads(self.payload)
            except ValueError:  # text no sealer accepts (inserted by hand): no fields to show
                data = None
            object.__setattr__(self, "data", data if isinstance(data, dict) else {})


@dataclass(frozen=True, slots=True)
class SealHorizon:
    """The highest seq handed out when it was read, and the writers then in flight, as the database
    names them (empty where no writer can be in flight beside the reader; None where the database
    cannot tell, and the horizon never settles). Once none of them is left, every event up to `seq` is
    committed or gone for good, and any later read sees each committed one."""

    seq: int
    pending: tuple[str, ...] | None = ()


@dataclass(frozen=True, slots=True)
class SealerMark:
    """The sealer's bookkeeping: every event up to `seq` is sealed or was refused, so a pass reads
    above it; `horizon`, read by an earlier pass, becomes the next mark once it has settled before a
    pass reads (that pass then sees every event up to it). Not evidence: verify does not read it."""

    seq: int = 0
    horizon: SealHorizon | None = None


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


_CANONICAL = json_writer(_plain, sort_keys=True, ensure_ascii=False)


def iso(moment: datetime) -> str:
    """UTC, microseconds, 'Z': one spelling for every time in the trail."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 as is; Decimals and times as strings: the same bytes every time
    (json.dumps(value, default=_plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False))."""
    return _CANONICAL(value)


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


def sealed_payload(payload: str, at: datetime) -> str:
    """The text an event is hashed (and exported) as: its canonical JSON with `at` the database's time of
    its insert. An event written before the database set the time already says that time, byte for
    byte, and is returned as stored (so what was sealed then verifies now). Text that is not a JSON
    object is returned as is (the sealer refuses it)."""
    return sealed_text_and_data(payload, at)[0]


def sealed_text_and_data(payload: str, at: datetime) -> tuple[str, dict[str, Any]]:
    """`sealed_payload`'s text and the fields it holds (json.loads of that text: {} when it is not a JSON
    object), from one parse of the stored payload: hand both to AuditEvent (its `data`), which would
    otherwise parse the text again."""
    moment = iso(at)
    try:
        data = json.loads(payload)
    except ValueError:
        return payload, {}
    if not isinstance(data, dict):
        return payload, {}
    if data.get("at") == moment:
        return payload, data
    data["at"] = moment
    return canonical_json(data), data


def sealed_event(seq: int, payload: str, at: datetime, **seal: Any) -> AuditEvent:
    """A stored event as read back (`seal`: position, prev_hash, hash when sealed), its payload parsed
    once: the hashed text and its fields come from the same json.loads."""
    text, data = sealed_text_and_data(payload, at)
    return AuditEvent(seq=seq, payload=text, data=data, **seal)


def event_time(data: Mapping[str, Any]) -> datetime | None:
    """The `at` of a sealed payload's data, or None when it has none a time can be read from."""
    value = data.get("at") if isinstance(data, Mapping) else None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return None if moment is None or moment.tzinfo is None else moment.astimezone(UTC)


def too_old(
    at: datetime | None, newest: datetime | None, tolerance_s: float = SEAL_TOLERANCE_S
) -> str | None:
    """Why an event at `at` may not be sealed after one at `newest` (None: it may)."""
    if at is None:
        return "it has no time the database set (not a JSON object with an `at`)"
    if newest is not None and (newest - at).total_seconds() > tolerance_s:
        behind = (newest - at).total_seconds()
        return (
            f"its time {iso(at)} is {behind:.0f} s before an event sealed earlier ({iso(newest)}; "
            f"more than {tolerance_s:g} s): held back before commit, or back-dated"
        )
    return None


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
    broken_type: str | None = None  # the event's type at the broken position, when it has one
    # Unsealed events the sealer refuses (seq, type, why): each is a finding, as a broken link is.
    refused: tuple[tuple[int, str | None, str], ...] = ()

    @property
    def ok(self) -> bool:
        return self.problem is None


class ChainWalker:
    """Walks seals in position order and stops at the first link that does not hold."""

    def __init__(self, tolerance_s: float = SEAL_TOLERANCE_S) -> None:
        self.position = 0
        self.hash = GENESIS
        self.newest: datetime | None = None  # the newest event time walked so far
        self.tolerance_s = tolerance_s
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
        return _columns_problem(payload, columns or {}) or self._time_problem(payload)

    def _time_problem(self, payload: str) -> str | None:
        """A sealed event older than one sealed before it (beyond the tolerance) was let in past the
        sealer's check (a seal inserted by hand): named as the sealer would have refused it."""
        try:
            data = json.loads(payload)
        except ValueError:
            data = None
        at = event_time(data) if isinstance(data, dict) else None
        problem = too_old(at, self.newest, self.tolerance_s)
        if problem is None and (self.newest is None or at > self.newest):
            self.newest = at
        return problem


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
