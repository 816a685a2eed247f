"""An in-memory unit of work for fast service tests: the same contract as the SQL one, with real
transactions (a working copy committed or thrown away) and a store-wide lock standing in for row locks."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

from adapters.fake.audit import FakeAuditLog
from creditctl.domain.account import CreditAccount
from creditctl.domain.api_key import ApiKey, Role
from creditctl.domain.audit import SealerMark
from creditctl.domain.balance import BalanceReport, BalanceSnapshot
from creditctl.domain.credit import ProfileChange
from creditctl.domain.decision import Decision, DecisionState
from creditctl.domain.freeze import Freeze, LiftedHow
from creditctl.domain.hold import ExpiredHold, Hold, HoldStatus, Settlement
from creditctl.domain.idempotency import Claim, IdempotencyRecord, StoredAnswer
from creditctl.domain.limit_request import CreditLimitRequest
from creditctl.domain.money import CENT
from creditctl.domain.payment import PaymentRecord
from creditctl.domain.rule_set import (
    ApplicableRuleSet,
    AssignedBy,
    Assignment,
    RuleSetRecord,
    RuleSetVersion,
)
from creditctl.ports.clock import Clock
from creditctl.ports.idempotency import write_pending_claim
from creditctl.ports.repositories import OrderIdTaken, QueueQuery
from creditctl.ports.upstream_configs import StoredConfig
from rules import parse_rule_set


@dataclass
class FakeState:
    customers: dict[str, str] = field(default_factory=dict)
    accounts: dict[tuple[str, str], CreditAccount] = field(default_factory=dict)
    decisions: dict[tuple[str, str], Decision] = field(default_factory=dict)
    holds: dict[str, Hold] = field(default_factory=dict)
    rule_sets: list[RuleSetRecord] = field(default_factory=list)
    assignments: dict[tuple[str, str], Assignment] = field(default_factory=dict)
    api_keys: dict[str, ApiKey] = field(default_factory=dict)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    upstream_configs: dict[str, StoredConfig] = field(default_factory=dict)
    payments: dict[tuple[int, str], PaymentRecord] = field(default_factory=dict)
    payment_changes: list[dict[str, Any]] = field(default_factory=list)
    balance_history: list[tuple[int, BalanceSnapshot]] = field(default_factory=list)
    credit_history: list[tuple[int, ProfileChange]] = field(default_factory=list)
    limit_requests: dict[str, CreditLimitRequest] = field(default_factory=dict)
    audit_events: list[dict[str, Any]] = field(default_factory=list)
    audit_seals: dict[int, tuple[int, str, str]] = field(default_factory=dict)
    audit_mark: list[SealerMark] = field(default_factory=lambda: [SealerMark()])  # one cell
    freezes: list[Freeze] = field(default_factory=list)
    balance_reports: dict[str, BalanceReport] = field(default_factory=dict)
    idempotency: dict[str, tuple[Claim, StoredAnswer | None]] = field(default_factory=dict)
    next_id: int = 1


class FakeStore:
    """What is committed. One lock serialises transactions, like SQLite's write lock."""

    def __init__(self) -> None:
        self.state = FakeState()
        self.lock = threading.RLock()
        self.commits = 0


class FakeUnitOfWork:
    def __init__(self, store: FakeStore | None = None, *, clock: Clock | None = None) -> None:
        """`clock` is the fake database's clock (shared by every unit of work on the store)."""
        self.store = store or FakeStore()
        self._clock = clock
        self._local = threading.local()

    def now(self) -> datetime:
        return self._clock.now() if self._clock is not None else datetime.now(UTC)

    @property
    def _w(self) -> FakeState:
        return self._local.work  # type: ignore[no-any-return]

    def batched(self) -> Self:
        """As the SQL unit of work's: a taken order id then surfaces at commit(), not at the insert."""
        self._local.batched = True
        return self

    def __enter__(self) -> Self:
        self.store.lock.acquire()
        self._local.batch = _Batch(getattr(self._local, "batched", False))
        self._local.batched = False
        self._bind(copy.deepcopy(self.store.state))
        return self

    def _bind(self, work: FakeState) -> None:
        self._local.work = work
        self.accounts, self.customers = _Accounts(work), _Customers(work)
        self.decisions, self.holds = _Decisions(work, self._local.batch), _Holds(work)
        self.rule_sets, self.api_keys, self.outbox = _RuleSets(work, self.now), _ApiKeys(work), _Outbox(work)
        self.upstream_configs = _UpstreamConfigs(work)
        self.payments, self.balance_history = _Payments(work), _BalanceHistory(work)
        self.credit_history, self.limit_requests = _CreditHistory(work), _LimitRequests(work)
        self.audit = FakeAuditLog(work.audit_events, work.audit_seals, work.audit_mark)
        self.freezes = _Freezes(work)
        self.balance_reports = _BalanceReports(work)
        self.idempotency = _Idempotency(work)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._local.work = None
        self.store.lock.release()

    def commit(self) -> None:
        if self._local.batch.failed is not None:  # a batched write failed: nothing of the unit is kept
            failed, self._local.batch.failed = self._local.batch.failed, None
            self.rollback()
            raise failed
        claim = write_pending_claim(self.idempotency)  # the request's Idempotency-Key, with the change
        self.store.state = copy.deepcopy(self._w)
        self.store.commits += 1
        if claim is not None:
            claim.written = True

    def rollback(self) -> None:
        self._bind(copy.deepcopy(self.store.state))


@dataclass
class _Batch:
    """A batched unit's state: its first failed write, raised from commit() as the database would."""

    on: bool
    failed: Exception | None = None


class _Accounts:
    def __init__(self, w: FakeState) -> None:
        self.w = w

    def get(self, customer_code: str, sale_group_code: str) -> CreditAccount | None:
        a = self.w.accounts.get((customer_code, sale_group_code))
        return copy.deepcopy(a)

    lock = get

    def add(self, account: CreditAccount) -> CreditAccount:
        key = (account.customer_code, account.sale_group_code)
        if key not in self.w.accounts:
            self.w.accounts[key] = replace(account, id=self.w.next_id)
            self.w.next_id += 1
        return copy.deepcopy(self.w.accounts[key])

    def save(self, account: CreditAccount) -> None:
        self.w.accounts[(account.customer_code, account.sale_group_code)] = copy.deepcopy(account)

    def for_customer(self, customer_code: str) -> list[CreditAccount]:
        return [copy.deepcopy(a) for (c, _), a in sorted(self.w.accounts.items()) if c == customer_code]


class _Customers:
    def __init__(self, w: FakeState) -> None:
        self.w = w

    def exists(self, customer_code: str) -> bool:
        return customer_code in self.w.customers

    def add(self, customer_code: str, name: str, now: datetime) -> bool:
        if customer_code in self.w.customers:
            return False
        self.w.customers[customer_code] = name
        return True

    def codes(self) -> list[str]:
        return sorted(self.w.customers)

    def names(self) -> dict[str, str]:
        return dict(sorted(self.w.customers.items()))

    def set_name(self, customer_code: str, name: str) -> None:
        if customer_code in self.w.customers:
            self.w.customers[customer_code] = name


class _Decisions:
    def __init__(self, w: FakeState, batch: _Batch) -> None:
        self.w = w
        self.batch = batch

    def get(self, customer_code: str, order_id: str) -> Decision | None:
        return self._with_hold(self.w.decisions.get((customer_code, order_id)))

    def taken(self, customer_code: str, order_ids: list[str]) -> set[str]:
        return {o for o in order_ids if (customer_code, o) in self.w.decisions}

    def find(self, order_id: str, customers: frozenset[str] | None) -> list[Decision]:
        found = [
            d
            for (c, o), d in sorted(self.w.decisions.items())
            if o == order_id and (customers is None or c in customers)
        ]
        return [self._with_hold(d) for d in found[:2]]  # type: ignore[misc]

    def _with_hold(self, decision: Decision | None) -> Decision | None:
        d = copy.deepcopy(decision)
        if d is not None:
            d.hold = copy.deepcopy(next((h for h in self.w.holds.values() if h.decision_id == d.id), None))
        return d

    def search(
        self,
        customers: frozenset[str] | None,
        *,
        customer_code: str | None,
        order_id_prefix: str,
        before: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Decision]:
        found = [
            d
            for (c, o), d in self.w.decisions.items()
            if (customers is None or c in customers)
            and customer_code in (None, c)
            and o.startswith(order_id_prefix)
            and (before is None or (d.decided_at, d.id) < before)
        ]
        found.sort(key=lambda d: (d.decided_at, d.id), reverse=True)
        return [self._with_hold(d) for d in found[:limit]]  # type: ignore[misc]

    def add_new(self, decision: Decision) -> None:
        key = (decision.order.customer_code, decision.order_id)
        taken = key in self.w.decisions
        # The decision's own id is unique too (the primary key). As in adapters.sql.decisions: unbatched,
        # the order id is checked first (ON CONFLICT on it) and a repeated id alone is an integrity error;
        # batched, either fails the unit as a taken order id (a request whose ticket the holder of the
        # account's turn already decided).
        repeated = any(d.id == decision.id for d in self.w.decisions.values())
        if not self.batch.on:
            if taken:
                raise OrderIdTaken(decision.order_id)
            if repeated:
                raise ValueError(f"decision id {decision.id!r} already stored")
        elif taken or repeated:
            self.batch.failed = self.batch.failed or OrderIdTaken(decision.order_id)
            return
        self.w.decisions[key] = copy.deepcopy(decision)

    def update(self, decision: Decision) -> None:
        self.w.decisions[(decision.order.customer_code, decision.order_id)] = copy.deepcopy(decision)

    def deferred(self, *, due_before: datetime | None = None, limit: int = 1000) -> list[tuple[str, str]]:
        ordered = sorted(self.w.decisions.values(), key=lambda d: (d.decided_at, d.id))
        out = [
            (d.order.customer_code, d.order_id)
            for d in ordered
            if d.state.value == "deferred"
            and (
                due_before is None
                or (d.deferral_expires_at is not None and d.deferral_expires_at <= due_before)
            )
        ]
        return out[:limit]

    def deferred_on_account(self, account_id: int, limit: int) -> list[Decision]:
        found = [
            d
            for d in self.w.decisions.values()
            if d.account_id == account_id and d.state is DecisionState.DEFERRED
        ]
        found.sort(key=lambda d: (d.decided_at, d.id))
        return [self._with_hold(d) for d in found[:limit]]  # type: ignore[misc]

    def queue(self, query: QueueQuery, *, limit: int) -> list[Decision]:
        found = sorted(
            (d for d in self.w.decisions.values() if _in_queue(d, query)), key=lambda d: (d.decided_at, d.id)
        )
        return [self._with_hold(d) for d in found[:limit]]  # type: ignore[misc]


def _in_queue(d: Decision, q: QueueQuery) -> bool:
    checks = (
        d.state is DecisionState.DEFERRED,
        q.customers is None or d.order.customer_code in q.customers,
        q.customer_code is None or d.order.customer_code == q.customer_code,
        q.sale_group_code is None or d.order.sale_group_code == q.sale_group_code,
        q.reason is None or any(r.reason == q.reason for r in d.reasons),
        q.min_age_s is None or d.decided_at <= q.now - timedelta(seconds=q.min_age_s),
        q.max_age_s is None or d.decided_at >= q.now - timedelta(seconds=q.max_age_s),
        q.min_amount is None or d.order.amount >= q.min_amount,
        q.max_amount is None or d.order.amount <= q.max_amount,
        q.after is None or (d.decided_at, d.id) > q.after,
    )
    return all(checks)


class _Holds:
    """Settled parts live on the stored hold (hold.settlements), as the SQL repository loads them."""

    def __init__(self, w: FakeState) -> None:
        self.w = w

    def add(self, hold: Hold) -> None:
        self.w.holds[hold.id] = copy.deepcopy(hold)

    def save(self, hold: Hold) -> None:
        parts = self.w.holds[hold.id].settlements if hold.id in self.w.holds else []
        self.w.holds[hold.id] = replace(copy.deepcopy(hold), settlements=list(parts))

    def add_settlement(self, settlement: Settlement) -> None:
        h = self.w.holds[settlement.hold_id]
        if settlement.settlement_id is not None and h.find_settlement(settlement.settlement_id):
            raise ValueError(f"settlement {settlement.settlement_id!r} already stored")  # the unique key
        h.settlements.append(settlement)

    def expire_due(self, account_id: int, now: datetime) -> list[ExpiredHold]:
        ended = []
        for h in self.w.holds.values():
            if h.account_id == account_id and h.status is HoldStatus.OPEN and h.expires_at <= now:
                ended.append(ExpiredHold(h.id, h.order_id, h.end_remainder(HoldStatus.EXPIRED, now)))
        return sorted(ended, key=lambda e: e.hold_id)

    def stop_counting_settled(self, account_id: int, fetched_before: datetime) -> Decimal:
        total = Decimal("0.00")
        for h in self.w.holds.values():
            if h.account_id != account_id:
                continue
            for i, s in enumerate(h.settlements):
                if s.counting and s.settled_at < fetched_before:
                    h.settlements[i] = replace(s, counting=False)
                    total += s.amount
            if not h.is_open and not any(s.counting for s in h.settlements):
                h.counting = False
        return total

    def counting(self, account_id: int) -> list[Hold]:
        found = [h for h in self.w.holds.values() if h.account_id == account_id and h.counting]
        return [copy.deepcopy(h) for h in sorted(found, key=lambda h: h.created_at)]

    def page(
        self,
        account_id: int,
        *,
        statuses: frozenset[str] | None,
        now: datetime,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Hold]:
        def shown(h: Hold) -> str:
            return HoldStatus.EXPIRED.value if h.is_open and h.expires_at <= now else h.status.value

        found = [
            h
            for h in self.w.holds.values()
            if h.account_id == account_id
            and (statuses is None or shown(h) in statuses)
            and (after is None or (h.created_at, h.id) < after)
        ]
        found.sort(key=lambda h: (h.created_at, h.id), reverse=True)
        return [copy.deepcopy(h) for h in found[:limit]]

    def accounts_with_due_holds(self, now: datetime, limit: int = 1000) -> list[tuple[str, str]]:
        due = {
            h.account_id for h in self.w.holds.values() if h.status is HoldStatus.OPEN and h.expires_at <= now
        }
        return [k for k, a in self.w.accounts.items() if a.id in due][:limit]


class _RuleSets:
    def __init__(self, w: FakeState, now: Callable[[], datetime]) -> None:
        self.w = w
        self._now = now

    def _version(self, record: RuleSetRecord) -> RuleSetVersion:
        assert record.version is not None
        return RuleSetVersion(
            id=record.id,
            version=record.version,
            name=record.name,
            rules=parse_rule_set(record.document, stored=True),
            published_at=record.published_at,
            effective_at=record.effective_at,
        )

    def active(self) -> RuleSetVersion:
        now = self._now()
        live = [
            r
            for r in self.w.rule_sets
            if r.version is not None and (r.effective_at is None or r.effective_at <= now)
        ]
        if not live:
            raise LookupError("no rule set is published")
        return self._version(max(live, key=lambda r: r.version or 0))

    def published(self, rule_set_id: int) -> RuleSetVersion | None:
        found = self.record(rule_set_id)
        return None if found is None or found.version is None else self._version(found)

    def for_account(self, customer_code: str, sale_group_code: str) -> ApplicableRuleSet:
        for key, why in (
            ((customer_code, sale_group_code), AssignedBy.ACCOUNT),
            ((customer_code, ""), AssignedBy.CUSTOMER),
        ):
            assigned = self.w.assignments.get(key)
            found = None if assigned is None else self.published(assigned.rule_set_id)
            if found is not None and found.in_effect(self._now()):
                return ApplicableRuleSet(found, why)
        return ApplicableRuleSet(self.active(), AssignedBy.DEFAULT)

    def publish(
        self,
        name: str,
        document: dict[str, Any],
        now: datetime,
        *,
        by: str = "cli",
        reason: str = "imported",
        effective_at: datetime | None = None,
        rolled_back_from: int | None = None,
    ) -> RuleSetVersion:
        parse_rule_set(document)
        record = RuleSetRecord(
            id=len(self.w.rule_sets) + 1,
            name=name,
            version=self._next_version(),
            document=copy.deepcopy(document),
            created_at=now,
            created_by=by,
            updated_at=now,
            published_at=now,
            published_by=by,
            reason=reason,
            effective_at=effective_at,
            rolled_back_from=rolled_back_from,
        )
        self.w.rule_sets.append(record)
        return self._version(record)

    def publish_draft(
        self,
        rule_set_id: int,
        document: dict[str, Any],
        now: datetime,
        *,
        by: str,
        reason: str,
        effective_at: datetime | None,
        revision: int,
    ) -> RuleSetVersion | None:
        found = self.record(rule_set_id)
        if found is None or found.version is not None or found.revision != revision:
            return None
        record = replace(
            found,
            version=self._next_version(),
            document=copy.deepcopy(document),
            published_at=now,
            updated_at=now,
            published_by=by,
            reason=reason,
            effective_at=effective_at,
            revision=revision + 1,
        )
        self.w.rule_sets[rule_set_id - 1] = record
        return self._version(record)

    def _next_version(self) -> int:
        return max((r.version or 0 for r in self.w.rule_sets), default=0) + 1

    def add_draft(self, name: str, document: dict[str, Any], *, by: str, now: datetime) -> RuleSetRecord:
        record = RuleSetRecord(
            id=len(self.w.rule_sets) + 1,
            name=name,
            version=None,
            document=copy.deepcopy(document),
            created_at=now,
            created_by=by,
            updated_at=now,
        )
        self.w.rule_sets.append(record)
        return record

    def update_draft(
        self, rule_set_id: int, name: str, document: dict[str, Any], now: datetime, *, revision: int
    ) -> bool:
        found = self.record(rule_set_id)
        if found is None or found.version is not None or found.revision != revision:
            return False
        self.w.rule_sets[rule_set_id - 1] = replace(
            found, name=name, document=copy.deepcopy(document), updated_at=now, revision=revision + 1
        )
        return True

    def record(self, rule_set_id: int) -> RuleSetRecord | None:
        return self.w.rule_sets[rule_set_id - 1] if 0 < rule_set_id <= len(self.w.rule_sets) else None

    def record_by_version(self, version: int) -> RuleSetRecord | None:
        return next((r for r in self.w.rule_sets if r.version == version), None)

    def records(self) -> list[RuleSetRecord]:
        return list(self.w.rule_sets)

    def versions(self) -> list[RuleSetVersion]:
        published = sorted(
            (r for r in self.w.rule_sets if r.version is not None), key=lambda r: r.version or 0
        )
        return [self._version(r) for r in published]

    def assign(self, assignment: Assignment) -> None:
        self.w.assignments[(assignment.customer_code, assignment.sale_group_code)] = assignment

    def unassign(self, customer_code: str, sale_group_code: str) -> bool:
        return self.w.assignments.pop((customer_code, sale_group_code), None) is not None

    def assignments(self, customer_code: str) -> list[Assignment]:
        return [a for (c, _), a in sorted(self.w.assignments.items()) if c == customer_code]

    def pins(self, customers: frozenset[str] | None = None) -> list[Assignment]:
        found = (a for a in self.w.assignments.values() if customers is None or a.customer_code in customers)
        return sorted(found, key=lambda a: (a.rule_set_id, a.customer_code, a.sale_group_code))


class _ApiKeys:
    def __init__(self, w: FakeState) -> None:
        self.w = w

    def add(
        self,
        *,
        name: str,
        role: Role,
        customers: frozenset[str] | None,
        key_hash: str,
        now: datetime,
        approval_limit: Decimal | None = None,
        owner: str | None = None,
    ) -> ApiKey:
        key = ApiKey(
            id=len(self.w.api_keys) + 1,
            name=name,
            role=role,
            customers=customers,
            created_at=now,
            approval_limit=approval_limit,
            owner=owner or name,
        )
        self.w.api_keys[key_hash] = key
        return key

    def by_hash(self, key_hash: str, *, include_revoked: bool = False) -> ApiKey | None:
        key = self.w.api_keys.get(key_hash)
        return key if key is not None and (include_revoked or key.revoked_at is None) else None

    def all(self) -> list[ApiKey]:
        return sorted(self.w.api_keys.values(), key=lambda k: k.id)

    def revoke(self, key_id: int, now: datetime) -> bool:
        for h, k in self.w.api_keys.items():
            if k.id == key_id and k.revoked_at is None:
                self.w.api_keys[h] = replace(k, revoked_at=now)
                return True
        return False


class _Outbox:
    def __init__(self, w: FakeState) -> None:
        self.w = w

    def add(self, *, event_id: str, topic: str, payload: dict[str, Any], now: datetime) -> None:
        self.w.outbox.append({"id": event_id, "topic": topic, "payload": payload, "created_at": now})


class _UpstreamConfigs:
    def __init__(self, w: FakeState) -> None:
        self.w = w

    def get(self, name: str) -> StoredConfig | None:
        return self.w.upstream_configs.get(name)

    def put(self, config: StoredConfig) -> None:
        if config.is_active:
            for n, c in list(self.w.upstream_configs.items()):
                if c.kind == config.kind and n != config.name and c.is_active:
                    self.w.upstream_configs[n] = replace(c, is_active=False)
        self.w.upstream_configs[config.name] = config

    def reseal(self, name: str, document: dict[str, Any]) -> None:
        if name in self.w.upstream_configs:
            self.w.upstream_configs[name] = replace(self.w.upstream_configs[name], document=document)

    def all(self) -> list[StoredConfig]:
        return [self.w.upstream_configs[n] for n in sorted(self.w.upstream_configs)]

    def active(self, kind: str) -> StoredConfig | None:
        return next((c for c in self.w.upstream_configs.values() if c.kind == kind and c.is_active), None)


class _Payments:
    def __init__(self, w: FakeState) -> None:
        self.w = w

    def get_many(self, account_id: int, invoice_ids: Sequence[str]) -> dict[str, PaymentRecord]:
        found = ((i, self.w.payments.get((account_id, i))) for i in invoice_ids)
        return {i: r for i, r in found if r is not None}

    def put(self, account_id: int, record: PaymentRecord, *, existed: bool, now: datetime) -> None:
        self.w.payments[(account_id, record.invoice_id)] = record

    def add_change(
        self, account_id: int, before: PaymentRecord | None, after: PaymentRecord, *, by: str, now: datetime
    ) -> None:
        self.w.payment_changes.append(
            {
                "account_id": account_id,
                "invoice_id": after.invoice_id,
                "before": before,
                "after": after,
                "by": by,
                "at": now,
            }
        )

    def changes(self, account_id: int, invoice_id: str) -> list[dict[str, Any]]:
        return [
            {k: c[k] for k in ("before", "after", "by", "at")}
            for c in self.w.payment_changes
            if (c["account_id"], c["invoice_id"]) == (account_id, invoice_id)
        ]

    def page(self, account_id: int, *, after: str | None, limit: int) -> list[PaymentRecord]:
        ids = sorted(i for a, i in self.w.payments if a == account_id and (after is None or i > after))
        return [self.w.payments[(account_id, i)] for i in ids[:limit]]

    def for_facts(self, account_id: int, due_since: date) -> list[PaymentRecord]:
        return [
            r
            for (a, _), r in self.w.payments.items()
            if a == account_id and (r.is_open or r.due_date >= due_since)
        ]


class _BalanceHistory:
    def __init__(self, w: FakeState) -> None:
        self.w = w

    def add(self, account_id: int, snapshot: BalanceSnapshot) -> None:
        self.w.balance_history.append((account_id, snapshot))

    def average(self, account_id: int, since: datetime) -> Decimal | None:
        amounts = [s.amount for a, s in self.w.balance_history if a == account_id and s.fetched_at >= since]
        if not amounts:
            return None
        return (sum(amounts, Decimal(0)) / len(amounts)).quantize(CENT, rounding="ROUND_DOWN")


class _CreditHistory:
    def __init__(self, w: FakeState) -> None:
        self.w = w

    def add(self, account_id: int, change: ProfileChange) -> None:
        self.w.credit_history.append((account_id, change))

    def latest(self, account_id: int, limit: int = 50) -> list[ProfileChange]:
        return [c for a, c in reversed(self.w.credit_history) if a == account_id][:limit]


class _LimitRequests:
    def __init__(self, w: FakeState) -> None:
        self.w = w

    def add(self, request: CreditLimitRequest) -> None:
        self.w.limit_requests[request.id] = copy.deepcopy(request)

    def get(self, request_id: str) -> CreditLimitRequest | None:
        return copy.deepcopy(self.w.limit_requests.get(request_id))

    save = add

    def find(
        self,
        *,
        account_id: int | None,
        customers: frozenset[str] | None,
        status: str | None,
        now: datetime,
        limit: int = 500,
    ) -> list[CreditLimitRequest]:
        found = [
            copy.deepcopy(r)
            for r in self.w.limit_requests.values()
            if (account_id is None or r.account_id == account_id)
            and (customers is None or r.customer_code in customers)
            and (status is None or r.shown_status(now) == status)
        ]
        return sorted(found, key=lambda r: (-r.requested_at.timestamp(), r.id))[:limit]


class _BalanceReports:
    def __init__(self, w: FakeState) -> None:
        self.w = w

    def latest(self, customer_code: str) -> BalanceReport | None:
        return self.w.balance_reports.get(customer_code)

    def keep(self, report: BalanceReport) -> None:
        kept = self.w.balance_reports.get(report.customer_code)
        if kept is None or kept.fetched_at < report.fetched_at:
            self.w.balance_reports[report.customer_code] = report


class _Freezes:
    def __init__(self, w: FakeState) -> None:
        self.w = w

    def open(self, account_id: int, *, reason: str, by: str, now: datetime) -> None:
        self.w.freezes.append(
            Freeze(
                id=len(self.w.freezes) + 1, account_id=account_id, reason=reason, frozen_by=by, frozen_at=now
            )
        )

    def lift(self, account_id: int, *, how: LiftedHow, by: str, reason: str | None, now: datetime) -> None:
        for i, f in enumerate(self.w.freezes):
            if f.account_id == account_id and f.lifted_at is None:
                self.w.freezes[i] = replace(
                    f, lifted_at=now, lifted_by=by, lifted_how=how, lift_reason=reason
                )

    def for_account(self, account_id: int, limit: int = 200) -> list[Freeze]:
        return [f for f in reversed(self.w.freezes) if f.account_id == account_id][:limit]


class _Idempotency:
    def __init__(self, w: FakeState) -> None:
        self.w = w

    def get(self, key_hash: str) -> IdempotencyRecord | None:
        found = self.w.idempotency.get(key_hash)
        if found is None:
            return None
        claim, answer = found
        return IdempotencyRecord(claim.fingerprint, claim.token, claim.created_at, answer)

    def add(self, claim: Claim, answer: StoredAnswer | None = None) -> bool:
        if claim.key_hash in self.w.idempotency:
            return False
        self.w.idempotency[claim.key_hash] = (replace(claim), answer)
        return True

    def answer(self, claim: Claim, answer: StoredAnswer) -> bool:
        found = self.w.idempotency.get(claim.key_hash)
        if found is None or found[0].token != claim.token:
            return False
        self.w.idempotency[claim.key_hash] = (found[0], answer)
        return True

    def forget(self, claim: Claim) -> None:
        found = self.w.idempotency.get(claim.key_hash)
        if found is not None and found[0].token == claim.token:
            del self.w.idempotency[claim.key_hash]

    def discard_expired(self, key_hash: str, before: datetime) -> None:
        found = self.w.idempotency.get(key_hash)
        if found is not None and found[0].created_at <= before:
            del self.w.idempotency[key_hash]

    def prune(self, before: datetime) -> int:
        old = [k for k, (c, _) in self.w.idempotency.items() if c.created_at <= before]
        for k in old:
            del self.w.idempotency[k]
        return len(old)
