"""The review queue: deferred orders a credit manager releases (within the key's approval authority),
rejects or re-checks, one by one or a filter of the queue at a time. Each act is kept on the decision."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from creditctl.domain.account import CreditAccount
from creditctl.domain.api_key import ApiKey
from creditctl.domain.assessment import build_facts, effective_params
from creditctl.domain.audit import Actor
from creditctl.domain.audit_records import decided_state, decision_subject
from creditctl.domain.authority import Act, NotAuthorised, authorize, release_act
from creditctl.domain.decision import Decision, DecisionState
from creditctl.domain.errors import BeyondApprovalAuthority, NotDeferred, ReleaseRefused, UnknownCustomer
from creditctl.domain.review import rejected_reason, released_reason, review_entry
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.repositories import QueueQuery
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.account_state import refresh_locked_account
from creditctl.services.balances import Fetched, fetch_report, needs_refresh
from creditctl.services.credit_profile import account_params
from creditctl.services.events import decision_event
from creditctl.services.expiry import end_deferral_if_due
from creditctl.services.get_decision import visible_decision
from creditctl.services.outcome import take_hold
from creditctl.services.recheck_order import recheck_order
from rules import Evaluation, Outcome

BATCH_LIMIT = 1000  # orders one batch recheck looks at; the rest on the next call


@dataclass(frozen=True, slots=True)
class QueueFilter:
    customer_code: str | None = None
    sale_group_code: str | None = None
    reason: str | None = None
    min_age_s: int | None = None
    max_age_s: int | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None


def review_queue(
    filters: QueueFilter,
    *,
    after: tuple[datetime, str] | None,
    limit: int,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
) -> list[Decision]:
    """Deferred orders matching `filters` that the caller may see, oldest first, after the cursor.

    A customer the caller may not see is UnknownCustomer (as everywhere: it does not exist for it)."""
    _require_visible(filters, scope)
    with uow:
        return uow.decisions.queue(_query(filters, scope, uow.now(), after), limit=limit)


def release_deferred(
    order_id: str,
    *,
    customer_code: str | None,
    reason: str,
    key: ApiKey,
    actor: Actor,
    uow: UnitOfWork,
    balances: BalanceProvider,
    deadline_s: float = 2.0,
    override: bool = False,
) -> Decision:
    """Approve a deferred order by hand, beyond what the rules allowed but within the key's approval
    authority: the hold is taken under the account lock. Never on an unknown balance, never on a frozen
    account (ReleaseRefused); a stale balance is fetched first, with no lock held.

    The account is judged as it is now, under the lock (not by the figures of the deferral): a release
    that would take available + credit limit below zero is an overdraft, refused unless the releaser
    sends `override` with global authority and an approval limit covering the overdraft (the authority
    table). The review entry and the decision carry available before and after."""
    authorize(Act.RELEASE_DEFERRED, key)
    with uow:
        decision = visible_decision(uow, order_id, key.customers, customer_code)
        account = uow.accounts.get(decision.order.customer_code, decision.order.sale_group_code)
        applicable = uow.rule_sets.for_account(decision.order.customer_code, decision.order.sale_group_code)
        params = effective_params(applicable.rule_set.rules, account)
        now = uow.now()
    _require_deferred(decision)
    _require_authority(decision, key)
    fetched = Fetched(None, None)
    if needs_refresh(account, params, now):
        fetched = fetch_report(balances, decision.order.customer_code, deadline_s)
    with uow:
        locked, decision, now = _lock_deferred(uow, decision, key)
        refresh_locked_account(uow, locked, fetched.report, now, actor=actor)
        decision = visible_decision(uow, order_id, key.customers, decision.order.customer_code)
        if decision.outcome is Outcome.APPROVE:  # the newer balance was enough for the rules
            uow.accounts.save(locked)
            uow.commit()
            return decision
        applicable = uow.rule_sets.for_account(locked.customer_code, locked.sale_group_code)
        params = effective_params(applicable.rule_set.rules, locked)
        facts = build_facts(decision.order, locked, params, now)
        why_not = _why_not_releasable(
            decision, locked.is_frozen, locked.frozen_reason, facts
        ) or _would_freeze(applicable.rule_set.rules.evaluate(facts, params))
        if why_not is not None:
            uow.accounts.save(locked)
            uow.commit()  # what the refresh brought in stays
            raise ReleaseRefused(order_id, why_not)
        available = facts["available"]
        assert isinstance(available, Decimal)  # a usable balance (checked above)
        headroom_after = available + facts["credit.limit"] - decision.order.amount
        try:
            _, overdraft = release_act(
                key, amount=decision.order.amount, headroom_after=headroom_after, override=override
            )
        except NotAuthorised:
            uow.accounts.save(locked)
            uow.commit()  # what the refresh brought in stays
            raise
        outcome_before = decision.outcome.value
        decision.outcome, decision.state = Outcome.APPROVE, DecisionState.DECIDED
        decision.reasons = (*decision.reasons, released_reason(key, reason))
        decision.actions, decision.shortfall = (), None
        # The figures the release was judged on, as a decision's are: the account now, before its hold.
        decision.exposure, decision.available = locked.exposure, available
        decision.credit_limit, decision.credit_grade = facts["credit.limit"], facts["credit.grade"]
        take_hold(uow, decision, locked, params, now)
        entry = review_entry(
            "release",
            key=key,
            reason=reason,
            at=now,
            outcome_before=outcome_before,
            after=decision,
            facts=facts,
        )
        entry.update(
            available_before=str(available),
            available_after=str(available - decision.order.amount),
            credit_limit=str(facts["credit.limit"]),
            overdraft=str(overdraft),
            override=override,
        )
        decision.reviews.append(entry)
        uow.decisions.update(decision)
        decision_event(uow, "decision.released", decision, now, by=key.name, reason=reason)
        _audit(uow, "deferral.released", decision, locked, actor, reason, now, outcome_before, extra=entry)
        uow.accounts.save(locked)
        uow.commit()
    return decision


def _audit(
    uow: UnitOfWork,
    kind: str,
    decision: Decision,
    locked: CreditAccount,
    actor: Actor,
    reason: str | None,
    now: datetime,
    outcome_before: str,
    extra: dict[str, object] | None = None,
) -> None:
    """One audit event for a reviewer's release or reject, with the key that did it, its request and why
    (a release: available before and after, the overdraft and whether it was an override)."""
    money = (
        {k: extra[k] for k in ("available_before", "available_after", "overdraft", "override")}
        if extra
        else {}
    )
    uow.audit.append(
        kind,
        at=now,
        actor=actor,
        subject=decision_subject(decision),
        before={"state": DecisionState.DEFERRED.value, "outcome": outcome_before},
        after={**decided_state(decision, locked), "reason": reason, **money},
    )


def reject_deferred(
    order_id: str, *, customer_code: str | None, reason: str, key: ApiKey, actor: Actor, uow: UnitOfWork
) -> Decision:
    """Block a deferred order by hand, with the reason; nothing is held."""
    authorize(Act.REJECT_DEFERRED, key)
    with uow:
        decision = visible_decision(uow, order_id, key.customers, customer_code)
        _require_deferred(decision)
        locked, decision, now = _lock_deferred(uow, decision, key)
        params = account_params(uow, locked)
        facts = build_facts(decision.order, locked, params, now)
        outcome_before = decision.outcome.value
        decision.outcome, decision.state = Outcome.BLOCK, DecisionState.DECIDED
        decision.reasons = (*decision.reasons, rejected_reason(key, reason))
        decision.actions, decision.shortfall = (), None
        decision.reviews.append(
            review_entry(
                "reject",
                key=key,
                reason=reason,
                at=now,
                outcome_before=outcome_before,
                after=decision,
                facts=facts,
            )
        )
        uow.decisions.update(decision)
        decision_event(uow, "decision.rejected", decision, now, by=key.name, reason=reason)
        _audit(uow, "deferral.rejected", decision, locked, actor, reason, now, outcome_before)
        uow.commit()
    return decision


def recheck_deferred(
    order_id: str,
    *,
    customer_code: str | None,
    reason: str | None,
    key: ApiKey,
    actor: Actor,
    uow: UnitOfWork,
    balances: BalanceProvider,
    deadline_s: float = 2.0,
) -> Decision:
    """Evaluate a deferred order again (a recheck on the newest balance), recorded as a review."""
    with uow:
        decision = visible_decision(uow, order_id, key.customers, customer_code)
    _require_deferred(decision)
    return recheck_order(
        order_id,
        customer_code=decision.order.customer_code,
        scope=key.customers,
        uow=uow,
        balances=balances,
        deadline_s=deadline_s,
        reviewer=(key, reason),
        actor=actor,
    )


@dataclass(frozen=True, slots=True)
class BatchRecheck:
    rechecked: int
    by_outcome: dict[str, int]
    more: bool  # the filter matched more than BATCH_LIMIT orders: call again for the rest


def recheck_queue(
    filters: QueueFilter,
    *,
    reason: str | None,
    key: ApiKey,
    actor: Actor,
    uow: UnitOfWork,
    balances: BalanceProvider,
    deadline_s: float = 2.0,
    limit: int = BATCH_LIMIT,
) -> BatchRecheck:
    """Re-check every deferred order matching `filters` (oldest first); counts by new outcome
    ("expired" for a deferral that ran out, "decided_meanwhile" for one decided by someone else)."""
    _require_visible(filters, key.customers)
    with uow:
        found = uow.decisions.queue(_query(filters, key.customers, uow.now(), None), limit=limit + 1)
    counts: Counter[str] = Counter()
    for decision in found[:limit]:
        try:
            after = recheck_deferred(
                decision.order_id,
                customer_code=decision.order.customer_code,
                reason=reason,
                key=key,
                actor=actor,
                uow=uow,
                balances=balances,
                deadline_s=deadline_s,
            )
        except NotDeferred:
            counts["decided_meanwhile"] += 1
            continue
        counts["expired" if after.state is DecisionState.EXPIRED else after.outcome.value] += 1
    return BatchRecheck(rechecked=sum(counts.values()), by_outcome=dict(counts), more=len(found) > limit)


def _query(
    filters: QueueFilter, scope: frozenset[str] | None, now: datetime, after: tuple[datetime, str] | None
) -> QueueQuery:
    return QueueQuery(
        now=now,
        customers=scope,
        customer_code=filters.customer_code,
        sale_group_code=filters.sale_group_code,
        reason=filters.reason,
        min_age_s=filters.min_age_s,
        max_age_s=filters.max_age_s,
        min_amount=filters.min_amount,
        max_amount=filters.max_amount,
        after=after,
    )


def _require_visible(filters: QueueFilter, scope: frozenset[str] | None) -> None:
    if filters.customer_code is not None and scope is not None and filters.customer_code not in scope:
        raise UnknownCustomer(filters.customer_code)


def _require_deferred(decision: Decision) -> None:
    if decision.state is not DecisionState.DEFERRED:
        raise NotDeferred(decision.order_id, decision.state.value, decision.outcome.value)


def _require_authority(decision: Decision, key: ApiKey) -> None:
    limit = key.approval_limit
    if limit is None or decision.order.amount > limit:
        raise BeyondApprovalAuthority(
            decision.order_id,
            str(decision.order.amount),
            None if limit is None else str(limit),
            key.name,
        )


def _lock_deferred(
    uow: UnitOfWork, decision: Decision, key: ApiKey
) -> tuple[CreditAccount, Decision, datetime]:
    """Lock the order's account, read the order again and the database's time; a deferral that ran out
    is ended here (and the caller told it is no longer deferred)."""
    locked = uow.accounts.lock(decision.order.customer_code, decision.order.sale_group_code)
    assert locked is not None  # a decision's account exists
    decision = visible_decision(uow, decision.order_id, key.customers, decision.order.customer_code)
    now = uow.now()
    if end_deferral_if_due(uow, decision, now):
        uow.commit()
    _require_deferred(decision)
    return locked, decision, now


def _would_freeze(evaluation: Evaluation) -> str | None:
    """A release is an override of what the rules defer, never of what they freeze: an account the rules
    would freeze now (overdue payments posted since, a depleted balance) is not released into, even before
    an order has frozen it."""
    freezing = [m for m in evaluation.matches if m.outcome is Outcome.FREEZE]
    if not freezing:
        return None
    reasons = ", ".join(f"{m.reason} ({m.message})" for m in freezing)
    return f"the rules would freeze the account now: {reasons}; nothing is released into it"


def _why_not_releasable(
    decision: Decision, frozen: bool, frozen_reason: str | None, facts: dict[str, object]
) -> str | None:
    if decision.state is not DecisionState.DEFERRED:
        return f"it is no longer deferred (it is {decision.state.value}, {decision.outcome.value})"
    if frozen:
        return f"the account is frozen ({frozen_reason}); unfreeze it first"
    if facts["balance.amount"] is None:
        return (
            "the account has no usable balance (none, or older than max_balance_age_s); nothing is "
            "approved on an unknown balance: recheck once the balance source answers"
        )
    return None
