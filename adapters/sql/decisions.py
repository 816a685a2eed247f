"""Decisions on SQL. An order id is unique per customer: a racing duplicate insert is OrderIdTaken."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, bindparam, insert, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from adapters.sql import driver_statements
from adapters.sql.driver_statements import DriverStatement
from adapters.sql.holds import settlements_of
from adapters.sql.tables import DEFERRED_DECISION, decisions, holds
from creditctl.domain.balance import BalanceSnapshot
from creditctl.domain.decision import Decision, DecisionState, Order, Reason
from creditctl.domain.hold import Hold, HoldStatus
from creditctl.domain.money import from_fen, to_fen
from creditctl.ports.repositories import OrderIdTaken, QueueQuery
from rules import Outcome

_d = decisions.c
_h = holds.c
_HOLD_COLS = [c.label(f"h_{c.name}") for c in holds.c]
_SELECT = select(decisions, *_HOLD_COLS).outerjoin(holds, _h.decision_id == _d.id)
# Built once (hot path): bound parameters, compiled once per process.
_GET = _SELECT.where(_d.customer_code == bindparam("k_customer"), _d.order_id == bindparam("k_order"))
_KEY = ["customer_code", "order_id"]
_INSERT_NEW = {
    "postgresql": pg_insert(decisions)
    .on_conflict_do_nothing(index_elements=_KEY)
    .execution_options(preserve_rowcount=True),  # SQLAlchemy 2.1 keeps rowcount only on request
    "sqlite": sqlite_insert(decisions)
    .on_conflict_do_nothing(index_elements=_KEY)
    .execution_options(preserve_rowcount=True),
}
# Batched (PostgreSQL, the decision's writes sent with its COMMIT): a plain INSERT, so that a taken order
# id fails the transaction and every write queued after it, which then surfaces at commit.
_PG_INSERTS: dict[tuple[str, ...], DriverStatement] = {}  # by the columns written (one shape in practice)


def _insert_batched(keys: tuple[str, ...]) -> DriverStatement:
    statement = _PG_INSERTS.get(keys)
    if statement is None:
        statement = _PG_INSERTS.setdefault(keys, DriverStatement.of(insert(decisions), keys=keys))
    return statement


ORDER_KEY = "uq_decisions_customer_order"  # the constraint a taken order id violates
# The decision's own id, which a request brings (decide_order's ticket): a batched INSERT of a decision
# that request's order already has (made for it by the holder of the account's turn) violates this one
# first, PostgreSQL checking the older index first. Either means the order id is taken.
DECISION_KEY = "pk_decisions"
_UPDATE = update(decisions).where(_d.id == bindparam("k_id"))


class SqlDecisionRepository:
    def __init__(self, conn: Connection, *, batched: bool = False) -> None:
        self._conn = conn
        self._batched = batched

    def get(self, customer_code: str, order_id: str) -> Decision | None:
        row = self._conn.execute(_GET, {"k_customer": customer_code, "k_order": order_id}).first()
        return self._with_parts(_to_decision(row)) if row else None

    def taken(self, customer_code: str, order_ids: list[str]) -> set[str]:
        stmt = select(_d.order_id).where(_d.customer_code == customer_code, _d.order_id.in_(order_ids))
        return set(self._conn.execute(stmt).scalars())

    def find(self, order_id: str, customers: frozenset[str] | None) -> list[Decision]:
        stmt = _SELECT.where(_d.order_id == order_id)
        if customers is not None:
            stmt = stmt.where(_d.customer_code.in_(sorted(customers)))
        rows = self._conn.execute(stmt.order_by(_d.customer_code).limit(2))
        return [self._with_parts(_to_decision(r)) for r in rows]

    def _with_parts(self, decision: Decision) -> Decision:
        """Load the hold's settled parts, only when it has some (one more statement, off the hot path)."""
        hold = decision.hold
        if hold is not None and hold.settled:
            hold.settlements = settlements_of(self._conn, [hold.id]).get(hold.id, [])
        return decision

    def search(
        self,
        customers: frozenset[str] | None,
        *,
        customer_code: str | None,
        order_id_prefix: str,
        before: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Decision]:
        stmt = _SELECT
        if customers is not None:
            stmt = stmt.where(_d.customer_code.in_(sorted(customers)))
        if customer_code is not None:
            stmt = stmt.where(_d.customer_code == customer_code)
        if order_id_prefix:
            stmt = stmt.where(_d.order_id.startswith(order_id_prefix, autoescape=True))
        if before is not None:
            stmt = stmt.where(tuple_(_d.decided_at, _d.id) < tuple_(before[0], before[1]))
        stmt = stmt.order_by(_d.decided_at.desc(), _d.id.desc()).limit(limit)
        return [_to_decision(r) for r in self._conn.execute(stmt)]

    def add_new(self, decision: Decision) -> None:
        values = _values(decision) | {
            "id": decision.id,
            "order_id": decision.order_id,
            "account_id": decision.account_id,
            "customer_code": decision.order.customer_code,
            "sale_group_code": decision.order.sale_group_code,
            "amount_fen": to_fen(decision.order.amount),
            "channel": decision.order.channel,
            "metadata": decision.order.metadata,
            "fingerprint": decision.fingerprint,
        }
        if self._batched:  # a taken id fails the transaction: OrderIdTaken from the unit's commit
            driver_statements.execute(self._conn, _insert_batched(tuple(values)), values)
            return
        if self._conn.execute(_INSERT_NEW[self._conn.dialect.name], values).rowcount != 1:
            raise OrderIdTaken(decision.order_id)

    def update(self, decision: Decision) -> None:
        self._conn.execute(_UPDATE, _values(decision) | {"k_id": decision.id})

    def deferred(self, *, due_before: datetime | None = None, limit: int = 1000) -> list[tuple[str, str]]:
        stmt = select(_d.customer_code, _d.order_id).where(DEFERRED_DECISION)
        if due_before is not None:
            stmt = stmt.where(_d.deferral_expires_at <= due_before)
        rows = self._conn.execute(stmt.order_by(_d.decided_at, _d.id).limit(limit))
        return [(r.customer_code, r.order_id) for r in rows]

    def deferred_on_account(self, account_id: int, limit: int) -> list[Decision]:
        stmt = _SELECT.where(_d.account_id == account_id, DEFERRED_DECISION)
        return [_to_decision(r) for r in self._conn.execute(stmt.order_by(_d.decided_at, _d.id).limit(limit))]

    def queue(self, query: QueueQuery, *, limit: int) -> list[Decision]:
        stmt = _queue_filter(_SELECT.where(DEFERRED_DECISION), query)
        return [_to_decision(r) for r in self._conn.execute(stmt.order_by(_d.decided_at, _d.id).limit(limit))]


def _queue_filter(stmt: Select[Any], q: QueueQuery) -> Select[Any]:
    if q.customers is not None:
        stmt = stmt.where(_d.customer_code.in_(sorted(q.customers)))
    if q.customer_code is not None:
        stmt = stmt.where(_d.customer_code == q.customer_code)
    if q.sale_group_code is not None:
        stmt = stmt.where(_d.sale_group_code == q.sale_group_code)
    if q.reason is not None:
        stmt = stmt.where(_d.reason_codes.like(f"%,{q.reason},%"))
    if q.min_age_s is not None:
        stmt = stmt.where(_d.decided_at <= q.now - timedelta(seconds=q.min_age_s))
    if q.max_age_s is not None:
        stmt = stmt.where(_d.decided_at >= q.now - timedelta(seconds=q.max_age_s))
    if q.min_amount is not None:
        stmt = stmt.where(_d.amount_fen >= to_fen(q.min_amount))
    if q.max_amount is not None:
        stmt = stmt.where(_d.amount_fen <= to_fen(q.max_amount))
    if q.after is not None:
        at, last_id = q.after
        stmt = stmt.where(or_(_d.decided_at > at, and_(_d.decided_at == at, _d.id > last_id)))
    return stmt


def _fen(v: Any) -> int | None:
    return None if v is None else to_fen(v)


def _values(d: Decision) -> dict[str, Any]:
    snap = d.balance
    return {
        "outcome": d.outcome.value,
        "state": d.state.value,
        "reasons": [{"rule": r.rule, "reason": r.reason, "message": r.message} for r in d.reasons],
        "actions": list(d.actions),
        "facts": d.facts,
        "balance_fen": to_fen(snap.amount) if snap else None,
        "balance_fetched_at": snap.fetched_at if snap else None,
        "balance_source": snap.source if snap else None,
        "exposure_fen": to_fen(d.exposure),
        "available_fen": _fen(d.available),
        "credit_limit_fen": to_fen(d.credit_limit),
        "credit_grade": d.credit_grade,
        "shortfall_fen": _fen(d.shortfall),
        "rule_set_id": d.rule_set_id,
        "rule_set_version": d.rule_set_version,
        "decided_at": d.decided_at,
        "deferral_expires_at": d.deferral_expires_at,
        "rechecks": d.rechecks,
        "rechecked_at": d.rechecked_at,
        "reviews": d.reviews or None,
        "reason_codes": "," + ",".join(r.reason for r in d.reasons) + ",",
    }


def _to_decision(r: Row[Any]) -> Decision:
    m = r._mapping
    hold = None
    if m["h_id"] is not None:
        hold = Hold(
            id=m["h_id"],
            account_id=m["h_account_id"],
            order_id=m["h_order_id"],
            decision_id=m["h_decision_id"],
            amount=from_fen(m["h_amount_fen"]),
            status=HoldStatus(m["h_status"]),
            created_at=m["h_created_at"],
            expires_at=m["h_expires_at"],
            ended_at=m["h_ended_at"],
            counting=bool(m["h_counting"]),
            settled=from_fen(m["h_settled_fen"]),
        )
    snap = None
    if m["balance_fen"] is not None:
        snap = BalanceSnapshot(from_fen(m["balance_fen"]), m["balance_fetched_at"], m["balance_source"] or "")
    return Decision(
        id=m["id"],
        order=Order(
            order_id=m["order_id"],
            customer_code=m["customer_code"],
            sale_group_code=m["sale_group_code"],
            amount=from_fen(m["amount_fen"]),
            channel=m["channel"],
            metadata=m["metadata"],
        ),
        account_id=m["account_id"],
        fingerprint=m["fingerprint"],
        outcome=Outcome(m["outcome"]),
        reasons=tuple(Reason(**x) for x in m["reasons"]),
        actions=tuple(m["actions"]),
        balance=snap,
        exposure=from_fen(m["exposure_fen"]),
        available=None if m["available_fen"] is None else from_fen(m["available_fen"]),
        credit_limit=from_fen(m["credit_limit_fen"]),
        credit_grade=m["credit_grade"],
        shortfall=None if m["shortfall_fen"] is None else from_fen(m["shortfall_fen"]),
        rule_set_id=m["rule_set_id"],
        rule_set_version=m["rule_set_version"],
        decided_at=m["decided_at"],
        state=DecisionState(m["state"]),
        facts=m["facts"],
        hold=hold,
        deferral_expires_at=m["deferral_expires_at"],
        rechecks=m["rechecks"],
        rechecked_at=m["rechecked_at"],
        reviews=list(m["reviews"] or []),
    )
