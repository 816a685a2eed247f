"""Decide one order: atomic, idempotent by order id, never on unknown state, never spending money twice."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import uuid4

from creditctl.domain.account import CreditAccount
from creditctl.domain.assessment import Assessment, assess, effective_params, rule_params
from creditctl.domain.audit import SYSTEM, Actor
from creditctl.domain.audit_records import decided_state, decision_subject
from creditctl.domain.decision import Decision, DecisionState, Order
from creditctl.domain.errors import OrderIdReused, UnknownAccount, UnknownCustomer, UpstreamUnavailable
from creditctl.domain.rule_set import RuleSetVersion
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.repositories import OrderIdTaken
from creditctl.ports.turns import ALONE, NO_TURNS, Taken, Turn, Turns
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.account_state import refresh_locked_account
from creditctl.services.balances import Fetched, fetch_report, keep_report, needs_refresh, young_report
from creditctl.services.customers import ensure_known
from creditctl.services.events import decision_event
from creditctl.services.outcome import apply_outcome, queue_notifications
from rules import Outcome

DEFAULT_DEADLINE_S = 2.0
# Orders of one account decided in one transaction at most: the holder's own and those waiting behind it.
TOGETHER_MAX = 16
NOT_FETCHED = Fetched(None, None)


@dataclass(frozen=True, slots=True)
class DecisionResult:
    decision: Decision
    created: bool
    together: bool = False  # made in one transaction with other orders for the account (_decide_together)


def decide_order(
    order: Order,
    *,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
    balances: BalanceProvider,
    deadline_s: float = DEFAULT_DEADLINE_S,
    actor: Actor = SYSTEM,
    turns: Turns = NO_TURNS,
) -> DecisionResult:
    """Decide `order` once: a replay of the same body returns the first decision, another body conflicts.

    `turns`: one account's orders in this process take turns before its row lock, and the holder of the
    turn decides the orders waiting behind it with its own, in its transaction (_decide_together)."""
    if scope is not None and order.customer_code not in scope:
        raise UnknownCustomer(order.customer_code)
    fingerprint = order.fingerprint()
    mine = _Ticket(order, fingerprint, actor)
    key = (order.customer_code, order.sale_group_code)
    with turns.turn(key, mine) as turn:
        if isinstance(turn.handed, DecisionResult):  # decided by the holder, with its own
            return turn.handed
        if turn.handed == ALONE:  # the holder could not: alone, after those already waiting for a turn
            with turns.turn(key):
                first = _first_unit(uow, mine, None)
        else:
            first = _first_unit(uow, mine, turn)
            if first is None:  # decided together and the transaction failed: this order alone now
                first = _first_unit(uow, mine, None)
    if isinstance(first, DecisionResult):
        return first
    locked, rule_set, registered, now = first
    # A customer the provider names (the Haier config, the fake file) is known on its first order.
    if not registered and not ensure_known(order.customer_code, uow=uow, balances=balances, now=now):
        raise UnknownCustomer(order.customer_code)
    # A stale or missing snapshot: the lock is released, the upstream asked, then the lock taken again
    # and the time read again (the world may have changed while the answer was on the wire).
    fetched = _fetch(uow, order, locked, balances, deadline_s)
    with turns.turn(key), uow.batched():
        relocked = _lock_or_open(uow, order, fetched)
        decided = _decide_locked(
            uow, order, fingerprint, relocked, rule_set, fetched, _database_time(uow, relocked), actor,
            decision_id=mine.decision_id,
        )  # fmt: skip
    return decided if decided.created else _replay_after_race(uow, mine)


@dataclass(frozen=True, slots=True)
class _Ticket:
    """An order as its request brought it: what the holder of the account's turn needs to decide it."""

    order: Order
    fingerprint: str
    actor: Actor
    # The id its decision gets, whoever makes it: a conflict on the order id then tells this request's
    # own decision (made by the holder of the turn while the request waited no longer) from another's.
    decision_id: str = field(default_factory=lambda: str(uuid4()))


_Unfetched = tuple[CreditAccount | None, RuleSetVersion, bool, datetime]  # what the fetch path goes on with


def _first_unit(uow: UnitOfWork, mine: _Ticket, turn: Turn | None) -> DecisionResult | _Unfetched | None:
    """The common case in one transaction: the stored snapshot is young enough to decide on. Holding the
    turn (`turn`), with the orders waiting behind it. Returns the result; or, the snapshot too old, what
    the fetch path needs (the lock let go); None: decided together, and that transaction failed."""
    order, fingerprint, actor = mine.order, mine.fingerprint, mine.actor
    with uow.batched():  # the writes and the COMMIT go together (creditctl.ports.unit_of_work)
        # A replay is not looked up first: the unique order id turns it into a conflict on insert,
        # answered from the stored decision (one statement less for every new order).
        locked = uow.accounts.lock(order.customer_code, order.sale_group_code)
        # Account assignment > customer assignment > global default (cached a second per process).
        rule_set = uow.rule_sets.for_account(order.customer_code, order.sale_group_code).rule_set
        now = _database_time(uow, locked)
        params = effective_params(rule_set.rules, locked) if locked is not None else None
        decided, registered = None, True
        if params is not None and not needs_refresh(locked, params, now):
            others = turn.take(TOGETHER_MAX - 1) if turn is not None else []
            if others:
                decided = _decide_together(uow, mine, others, locked, rule_set, now, params)
                if decided is None:
                    return None
            else:
                decided = _decide_locked(
                    uow, order, fingerprint, locked, rule_set, NOT_FETCHED, now, actor,
                    params=params, decision_id=mine.decision_id,
                )  # fmt: skip
        else:  # about to ask the upstream: a replay must not cost an upstream call
            existing = uow.decisions.get(order.customer_code, order.order_id)
            if existing is not None:
                return _replay(existing, mine)
            registered = locked is not None or uow.customers.exists(order.customer_code)
            if registered and locked is None:  # no account yet: the provider's kept answer may tell
                decided = _decide_on_kept_report(uow, mine, rule_set, now)
    if decided is not None:
        return decided if decided.created else _replay_after_race(uow, mine)
    return locked, rule_set, registered, now


def _decide_together(
    uow: UnitOfWork,
    mine: _Ticket,
    others: list[Taken],
    locked: CreditAccount,
    rule_set: RuleSetVersion,
    now: datetime,
    params: dict[str, Decimal],
) -> DecisionResult | None:
    """Inside the account's lock: this order, then each taken one in the order they came, each decided
    on the account as the one before left it (as many transactions one after another would, all at the
    database's `now`), and one commit. Each taken order is answered with its result once committed; if
    anything fails, nothing is kept and each is answered ALONE (the caller decides it alone, as this one
    does when this returns None). A taken order whose id would fail the commit (used already, or twice
    in the batch) is answered ALONE before anything is decided (_only_new); if this request's own order
    is a retry, the others are decided together all the same and it is answered as a replay."""
    others, mine_is_new = _only_new(uow, mine, others)
    existing = None if mine_is_new else uow.decisions.get(mine.order.customer_code, mine.order.order_id)
    if not others and existing is not None:  # a retry, and nobody else new: its replay, or a conflict
        return _replay(existing, mine)
    if not others or (existing is None and not mine_is_new):  # alone (a retry found by no read: as ever)
        return _decide_locked(
            uow, mine.order, mine.fingerprint, locked, rule_set, NOT_FETCHED, now, mine.actor,
            params=params, decision_id=mine.decision_id,
        )  # fmt: skip
    tickets = [*([mine] if mine_is_new else []), *(taken.item for taken in others)]
    results = []
    try:
        for ticket in tickets:
            results.append(
                _decide_locked(
                    uow, ticket.order, ticket.fingerprint, locked, rule_set, NOT_FETCHED, now, ticket.actor,
                    params=params, together=True, decision_id=ticket.decision_id,
                )
            )  # fmt: skip
        uow.accounts.save(locked)  # as the last order left it
        uow.commit()
    except Exception:
        try:
            uow.rollback()
        finally:
            for taken in others:
                taken.hand(ALONE)
        return None
    for taken, result in zip(others, results[len(results) - len(others) :], strict=True):
        taken.hand(result)
    return results[0] if existing is None else _replay(existing, mine)


def _only_new(uow: UnitOfWork, mine: _Ticket, others: list[Taken]) -> tuple[list[Taken], bool]:
    """The taken orders whose id is neither used already (a client's retry) nor another's in the batch
    (nor this request's own): any such one would fail the whole transaction at its commit. Those are
    answered ALONE at once (each then decided alone: a replay or a conflict). And whether this request's
    own order id is new. One statement more, in the lock, for a batch only."""
    order = mine.order
    ids = [taken.item.order.order_id for taken in others]
    used = uow.decisions.taken(order.customer_code, [order.order_id, *ids])
    seen, keep = {order.order_id}, []
    for taken, order_id in zip(others, ids, strict=True):
        if order_id in used or order_id in seen:
            taken.hand(ALONE)
        else:
            seen.add(order_id)
            keep.append(taken)
    return keep, order.order_id not in used


def _decide_locked(
    uow: UnitOfWork,
    order: Order,
    fingerprint: str,
    locked: CreditAccount | None,
    rule_set: RuleSetVersion,
    fetched: Fetched,
    now: datetime,
    actor: Actor,
    *,
    params: dict[str, Decimal] | None = None,
    together: bool = False,
    decision_id: str | None = None,
) -> DecisionResult:
    """Inside the account lock, at the database's `now`: evaluate, write decision, hold and exposure.

    `params`: effective_params(rule_set.rules, locked) where the caller has them (read under this lock).
    created=False means another request with this order id committed first (nothing was written). In a
    batched unit the writes below are blind and travel with the commit; a taken order id is then told
    by commit() rather than by the insert, and nothing of the unit is kept either way. together: the
    caller saves the account and commits, once for all its orders (a taken order id is raised to it),
    and the result says it was made together."""
    assert locked is not None
    # Computed once: nothing below changes the rule set or the account's overrides (locked.params).
    if params is None:
        params = effective_params(rule_set.rules, locked)
    refresh_locked_account(uow, locked, fetched.report, now, params=params)
    assessment = assess(order, locked, rule_set.rules, now, upstream_error=fetched.error, params=params)
    decision = _new_decision(order, fingerprint, locked, assessment, rule_set, params, now, decision_id)
    apply_outcome(uow, decision, locked, assessment, params, now)
    try:
        uow.decisions.add_new(decision)
        if decision.hold is not None:
            uow.holds.add(decision.hold)
        queue_notifications(uow, decision, locked, now)
        if decision.state is DecisionState.DEFERRED:
            decision_event(uow, "decision.deferred", decision, now)
        if not together:
            uow.accounts.save(locked)
        uow.audit.append(
            "decision.made",
            at=now,
            actor=actor,
            subject=decision_subject(decision),
            after=decided_state(decision, locked),
        )
        if not together:
            uow.commit()
    except OrderIdTaken:
        if together:
            raise
        uow.rollback()
        return DecisionResult(decision, created=False)
    return DecisionResult(decision, created=True, together=together)


def _database_time(uow: UnitOfWork, locked: CreditAccount | None) -> datetime:
    """The database's time after the lock was granted: from the lock's own round trip where it came."""
    if locked is not None and locked.locked_at is not None:
        return locked.locked_at
    return uow.now()


def _decide_on_kept_report(
    uow: UnitOfWork, mine: _Ticket, rule_set: RuleSetVersion, now: datetime
) -> DecisionResult | None:
    """The customer's newest kept answer, if younger than refresh_after_s, says without asking again
    whether it has a payer account in this sales group: one it names is opened (locked; a concurrent
    opener's row is found) and decided on that answer, any other is unknown. None: no young answer."""
    order = mine.order
    report = uow.balance_reports.latest(order.customer_code)
    if report is None or not young_report(report, rule_params(rule_set.rules), now):
        return None
    if report.for_sale_group(order.sale_group_code) is None:
        raise UnknownAccount(order.customer_code, order.sale_group_code)
    opened = uow.accounts.add(
        CreditAccount(id=0, customer_code=order.customer_code, sale_group_code=order.sale_group_code)
    )
    fetched = Fetched(report, None)
    return _decide_locked(  # timed after the lock was granted: the insert may have waited for another
        uow, order, mine.fingerprint, opened, rule_set, fetched, _database_time(uow, opened), mine.actor,
        decision_id=mine.decision_id,
    )  # fmt: skip


def _fetch(
    uow: UnitOfWork, order: Order, account: CreditAccount | None, balances: BalanceProvider, deadline_s: float
) -> Fetched:
    """Fetch with no lock held: the upstream may be slow, a lock must never wait on it. The answer is
    kept: an order in another of the groups it names is then decided on it, and one in a group it does
    not name is refused, without asking again."""
    fetched = fetch_report(balances, order.customer_code, deadline_s)
    keep_report(uow, fetched)
    if account is None:
        if fetched.report is None:
            raise UpstreamUnavailable(
                f"cannot verify sales group {order.sale_group_code!r}: "
                f"{fetched.error.message if fetched.error else 'no answer'}"
            )
        if fetched.report.for_sale_group(order.sale_group_code) is None:
            raise UnknownAccount(order.customer_code, order.sale_group_code)
    return fetched


def _lock_or_open(uow: UnitOfWork, order: Order, fetched: Fetched) -> CreditAccount:
    locked = uow.accounts.lock(order.customer_code, order.sale_group_code)
    if locked is not None:
        return locked
    if fetched.report is None or fetched.report.for_sale_group(order.sale_group_code) is None:
        raise UnknownAccount(order.customer_code, order.sale_group_code)
    return uow.accounts.add(
        CreditAccount(id=0, customer_code=order.customer_code, sale_group_code=order.sale_group_code)
    )


def _new_decision(
    order: Order,
    fingerprint: str,
    account: CreditAccount,
    assessment: Assessment,
    rule_set: RuleSetVersion,
    params: Mapping[str, Decimal],
    now: datetime,
    decision_id: str | None = None,
) -> Decision:
    deferred = assessment.outcome is Outcome.DEFER
    return Decision(
        id=decision_id or str(uuid4()),
        order=order,
        account_id=account.id,
        fingerprint=fingerprint,
        outcome=assessment.outcome,
        reasons=assessment.reasons,
        actions=assessment.actions,
        balance=account.snapshot,
        exposure=account.exposure,
        available=assessment.available,
        credit_limit=assessment.credit_limit,
        credit_grade=assessment.credit_grade,
        shortfall=assessment.shortfall,
        rule_set_id=rule_set.id,
        rule_set_version=rule_set.version,
        decided_at=now,
        state=DecisionState.DEFERRED if deferred else DecisionState.DECIDED,
        facts=assessment.facts,
        deferral_expires_at=now + timedelta(seconds=int(params["deferral_ttl_s"])) if deferred else None,
    )


def _replay(existing: Decision, mine: _Ticket) -> DecisionResult:
    """The decision already stored for this order id: this request's own (made for it by the holder of
    the account's turn while it waited no longer), a replay of the same body, or a conflict."""
    if existing.id == mine.decision_id:
        return DecisionResult(existing, created=True)
    if existing.fingerprint != mine.fingerprint:
        raise OrderIdReused(existing.order_id)
    return DecisionResult(existing, created=False)


def _replay_after_race(uow: UnitOfWork, mine: _Ticket) -> DecisionResult:
    """Another request with this order id committed first (or the holder of the turn, for this one):
    answer as a replay of it."""
    order = mine.order
    with uow:
        existing = uow.decisions.get(order.customer_code, order.order_id)
    if existing is None:  # the other writer rolled back; the caller may retry
        raise OrderIdReused(order.order_id)
    return _replay(existing, mine)
