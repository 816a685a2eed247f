"""Repository ports: how services load and store the domain. Money is Decimal CNY, times UTC."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from creditctl.domain.account import CreditAccount
from creditctl.domain.api_key import ApiKey, Role
from creditctl.domain.balance import BalanceReport, BalanceSnapshot
from creditctl.domain.credit import ProfileChange
from creditctl.domain.decision import Decision
from creditctl.domain.freeze import Freeze, LiftedHow
from creditctl.domain.hold import ExpiredHold, Hold, Settlement
from creditctl.domain.limit_request import CreditLimitRequest
from creditctl.domain.payment import PaymentRecord
from creditctl.domain.rule_set import ApplicableRuleSet, Assignment, RuleSetRecord, RuleSetVersion


class AccountRepository(Protocol):
    def get(self, customer_code: str, sale_group_code: str) -> CreditAccount | None:
        """The account as last committed, without a lock (may be stale by the time it is used)."""
        ...

    def lock(self, customer_code: str, sale_group_code: str) -> CreditAccount | None:
        """The account, locked until the unit of work ends: decisions on it serialise here."""
        ...

    def add(self, account: CreditAccount) -> CreditAccount:
        """Insert a new account (or find the one a concurrent writer just added) and return it locked."""
        ...

    def save(self, account: CreditAccount) -> None:
        """Store status, snapshot, exposure, names and parameter overrides."""
        ...

    def for_customer(self, customer_code: str) -> list[CreditAccount]: ...


class BalanceReportRepository(Protocol):
    """The provider's newest answer per customer: every payer account it named, as of when it was asked."""

    def latest(self, customer_code: str) -> BalanceReport | None:
        """The newest answer kept for the customer; None when none is."""
        ...

    def keep(self, report: BalanceReport) -> None:
        """Keep the answer unless one as new or newer is kept (idempotent; concurrent keeps: the newest)."""
        ...


class CustomerRepository(Protocol):
    def exists(self, customer_code: str) -> bool: ...

    def add(self, customer_code: str, name: str, now: datetime) -> bool:
        """Register a customer; False when it was already there (also when a concurrent add won)."""
        ...

    def codes(self) -> list[str]: ...

    def names(self) -> dict[str, str]:
        """Every registered customer's code and name ("" when none was given), by code."""
        ...

    def set_name(self, customer_code: str, name: str) -> None:
        """Rename a registered customer; nothing for an unknown code."""
        ...


class OrderIdTaken(Exception):
    """A decision for this customer's order id exists already (another request committed it first)."""


class DecisionRepository(Protocol):
    def get(self, customer_code: str, order_id: str) -> Decision | None:
        """The decision for one customer's order, with its hold. Order ids are unique per customer."""
        ...

    def taken(self, customer_code: str, order_ids: list[str]) -> set[str]:
        """Which of these order ids the customer has decisions for already."""
        ...

    def find(self, order_id: str, customers: frozenset[str] | None) -> list[Decision]:
        """Decisions for this order id among `customers` (None: any), at most two (enough to tell
        an ambiguous id), each with its hold."""
        ...

    def search(
        self,
        customers: frozenset[str] | None,
        *,
        customer_code: str | None,
        order_id_prefix: str,
        before: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Decision]:
        """Decisions among `customers` (None: any), of one customer if given, whose order id starts with
        `order_id_prefix`, newest first by (decided_at, id), those strictly before `before` (a cursor)."""
        ...

    def add_new(self, decision: Decision) -> None:
        """Insert a decision for an order id the customer has not used. A taken id raises OrderIdTaken:
        here, or in a batched unit of work (UnitOfWork.batched) at the latest from its commit(); either
        way nothing the unit wrote is kept."""
        ...

    def update(self, decision: Decision) -> None:
        """Store a re-evaluated or ended decision (outcome, reasons, state, facts, rechecks)."""
        ...

    def deferred(self, *, due_before: datetime | None = None, limit: int = 1000) -> list[tuple[str, str]]:
        """(customer_code, order_id) still deferred, oldest first; with due_before, only those whose
        deferral expired by then."""
        ...

    def deferred_on_account(self, account_id: int, limit: int) -> list[Decision]:
        """The account's deferred decisions, oldest first (decided_at, id), at most `limit`."""
        ...

    def queue(self, query: QueueQuery, *, limit: int) -> list[Decision]:
        """Deferred decisions matching `query`, oldest first by (decided_at, id), after its cursor."""
        ...


@dataclass(frozen=True, slots=True)
class QueueQuery:
    """A filter of the review queue. Ages are against `now` (the database's): min_age_s means deferred
    at least that long ago. `after` is the cursor: the (decided_at, id) of the last row already seen."""

    now: datetime
    customers: frozenset[str] | None = None  # the caller's scope (None: all)
    customer_code: str | None = None
    sale_group_code: str | None = None
    reason: str | None = None
    min_age_s: int | None = None
    max_age_s: int | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    after: tuple[datetime, str] | None = None


class HoldRepository(Protocol):
    def add(self, hold: Hold) -> None: ...

    def save(self, hold: Hold) -> None:
        """Store status, ended_at, the settled amount and whether it still counts."""
        ...

    def add_settlement(self, settlement: Settlement) -> None:
        """Store a settled part; a settlement id is unique per hold (the caller checked under the lock)."""
        ...

    def expire_due(self, account_id: int, now: datetime) -> list[ExpiredHold]:
        """End the account's open holds whose expiry has passed; return each with the remainder that
        stopped counting (settled parts keep counting until a balance includes them)."""
        ...

    def stop_counting_settled(self, account_id: int, fetched_before: datetime) -> Decimal:
        """Settled parts stop counting once a balance as of a moment after their settlement is known
        (settled_at < fetched_before); return their sum. A hold with nothing left counting stops counting."""
        ...

    def counting(self, account_id: int) -> list[Hold]:
        """Holds that count against the account (open, or with settled parts not yet in a balance), with
        their settlements."""
        ...

    def page(
        self,
        account_id: int,
        *,
        statuses: frozenset[str] | None,
        now: datetime,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Hold]:
        """The account's holds, newest first (created_at, id descending), after the cursor, with their
        settlements. Statuses as shown at `now`: an open hold past its expiry is `expired`."""
        ...

    def accounts_with_due_holds(self, now: datetime, limit: int = 1000) -> list[tuple[str, str]]:
        """(customer_code, sale_group_code) of accounts with open holds past their expiry."""
        ...


class RuleSetRepository(Protocol):
    def active(self) -> RuleSetVersion:
        """The global default: the newest published version whose effective_at has come by the
        database's clock; may be cached for a second per process."""
        ...

    def published(self, rule_set_id: int) -> RuleSetVersion | None:
        """A published version, compiled (None for a draft or an unknown id)."""
        ...

    def for_account(self, customer_code: str, sale_group_code: str) -> ApplicableRuleSet:
        """The version deciding for an account: its assignment, else its customer's, else the default.
        A pinned version whose effective_at is still ahead (database clock) is passed over until then.
        Assignments may be cached for a second per process."""
        ...

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
        """Store a validated document as the next version (in effect from effective_at, default now)."""
        ...

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
        """Turn the draft into the next version with its (validated, canonical) document, only if it is
        still a draft at `revision` (the one read in this transaction): a conditional UPDATE, so a
        publication or an edit another transaction committed first changes no row. None: no row
        changed (read it again to say why)."""
        ...

    def add_draft(self, name: str, document: dict[str, Any], *, by: str, now: datetime) -> RuleSetRecord:
        """Store an editable draft (its document need not be valid yet)."""
        ...

    def update_draft(
        self, rule_set_id: int, name: str, document: dict[str, Any], now: datetime, *, revision: int
    ) -> bool:
        """Replace a draft's name and document and count a revision, only if it is still a draft at
        `revision` (a conditional UPDATE, as publish_draft). False: no row changed."""
        ...

    def record(self, rule_set_id: int) -> RuleSetRecord | None: ...

    def record_by_version(self, version: int) -> RuleSetRecord | None: ...

    def records(self) -> list[RuleSetRecord]:
        """Every draft and version, by id."""
        ...

    def versions(self) -> Sequence[RuleSetVersion]: ...

    def assign(self, assignment: Assignment) -> None:
        """Pin a published version to a customer (sale_group_code "") or an account, replacing any."""
        ...

    def unassign(self, customer_code: str, sale_group_code: str) -> bool:
        """Remove an assignment; False when there was none."""
        ...

    def assignments(self, customer_code: str) -> list[Assignment]:
        """The customer's assignments (its own first, sale_group_code "")."""
        ...

    def pins(self, customers: frozenset[str] | None = None) -> list[Assignment]:
        """Every assignment (of these customers only, when given), by rule set id, customer and sales
        group: where each version is pinned, whatever the global default is now."""
        ...


class ApiKeyRepository(Protocol):
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
    ) -> ApiKey: ...

    def by_hash(self, key_hash: str, *, include_revoked: bool = False) -> ApiKey | None:
        """The key with this hash, unless revoked (with include_revoked: revoked or not, to say so)."""
        ...

    def all(self) -> list[ApiKey]: ...

    def revoke(self, key_id: int, now: datetime) -> bool: ...


class OutboxRepository(Protocol):
    def add(self, *, event_id: str, topic: str, payload: dict[str, Any], now: datetime) -> None:
        """Record an event in the same transaction as the change it describes."""
        ...


class PaymentRepository(Protocol):
    """Payment records, one per invoice per account (invoice ids are unique within an account)."""

    def get_many(self, account_id: int, invoice_ids: Sequence[str]) -> dict[str, PaymentRecord]: ...

    def put(self, account_id: int, record: PaymentRecord, *, existed: bool, now: datetime) -> None:
        """Insert the record (existed False) or replace the stored figures of its invoice."""
        ...

    def add_change(
        self, account_id: int, before: PaymentRecord | None, after: PaymentRecord, *, by: str, now: datetime
    ) -> None:
        """Keep a history row for a created or changed record: before (None: created), after, who, when."""
        ...

    def changes(self, account_id: int, invoice_id: str) -> list[dict[str, Any]]:
        """The invoice's history rows, oldest first: {"before", "after", "by", "at"}."""
        ...

    def page(self, account_id: int, *, after: str | None, limit: int) -> list[PaymentRecord]:
        """Records by invoice id, those after `after` (a cursor), at most `limit`."""
        ...

    def for_facts(self, account_id: int, due_since: date) -> list[PaymentRecord]:
        """Every open record, and every record due on or after `due_since` (all the facts need)."""
        ...


class BalanceHistoryRepository(Protocol):
    def add(self, account_id: int, snapshot: BalanceSnapshot) -> None:
        """Append a snapshot the account adopted (called only when a newer snapshot is adopted)."""
        ...

    def average(self, account_id: int, since: datetime) -> Decimal | None:
        """The mean of the snapshots fetched since `since`, rounded down to the fen; None without any."""
        ...


class CreditHistoryRepository(Protocol):
    def add(self, account_id: int, change: ProfileChange) -> None: ...

    def latest(self, account_id: int, limit: int = 50) -> list[ProfileChange]:
        """The newest changes first."""
        ...


class LimitRequestRepository(Protocol):
    def add(self, request: CreditLimitRequest) -> None: ...

    def get(self, request_id: str) -> CreditLimitRequest | None: ...

    def save(self, request: CreditLimitRequest) -> None:
        """Store status, decider, decision time and note."""
        ...

    def find(
        self,
        *,
        account_id: int | None,
        customers: frozenset[str] | None,
        status: str | None,
        now: datetime,
        limit: int = 500,
    ) -> list[CreditLimitRequest]:
        """Newest first; `status` as shown ("expired": approved with `until` <= now; "approved": running)."""
        ...


class FreezeRepository(Protocol):
    """The history of freezes; at most one open (not lifted) freeze per account."""

    def open(self, account_id: int, *, reason: str, by: str, now: datetime) -> None:
        """Record a new freeze of the account."""
        ...

    def lift(self, account_id: int, *, how: LiftedHow, by: str, reason: str | None, now: datetime) -> None:
        """Mark the account's open freeze lifted (nothing when none is open)."""
        ...

    def for_account(self, account_id: int, limit: int = 200) -> list[Freeze]:
        """Newest first."""
        ...
