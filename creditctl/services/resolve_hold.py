"""Ending a hold: settled (Haier debited it, in full or in parts) or released (the order was cancelled).

Idempotency: a settle with a `settlement_id` is applied once; a retry with the same id (and the same
amount, or none) answers as the first one did and changes nothing. A settle without an amount settles the
whole remainder, and retried once the hold is settled it answers 200 unchanged. A partial settle (an
amount) needs a settlement id, so that a retried part is never applied twice. A retried release answers
as the first one did. The other step on an ended hold is a conflict."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

from creditctl.domain.account import CreditAccount
from creditctl.domain.audit import SYSTEM, Actor
from creditctl.domain.audit_records import decision_subject
from creditctl.domain.decision import Decision, DecisionState
from creditctl.domain.errors import HoldNotOpen, InvalidRequest, OverSettlement
from creditctl.domain.hold import ZERO, HoldStatus
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.get_decision import visible_decision
from creditctl.services.hold_expiry import expire_due_holds


def settle_order(
    order_id: str,
    *,
    amount: Decimal | None = None,
    settlement_id: str | None = None,
    customer_code: str | None = None,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
    actor: Actor = SYSTEM,
) -> Decision:
    """Settle `amount` of the hold (None: all that is left). Each part counts until a balance as of a
    moment after its settlement arrives; the rest stays held."""
    with uow:
        decision, account = _locked(uow, order_id, customer_code, scope)  # an unseen order: 404 first
        if amount is not None and settlement_id is None:
            raise InvalidRequest(
                "a partial settle needs a settlement_id (or an Idempotency-Key header), so that a retry "
                "is not applied twice",
                field="settlement_id",
            )
        hold = decision.hold
        if hold is not None and settlement_id is not None:
            existing = hold.find_settlement(settlement_id)
            if existing is not None:
                hold.check_retry(existing, amount)
                return decision  # a retry: the same answer, nothing changed
        elif hold is not None and hold.status is HoldStatus.SETTLED:
            return decision  # a retried full settle: the same answer, nothing changed
        if hold is not None and hold.status is HoldStatus.SETTLED:
            raise OverSettlement(decision.order_id, requested=amount or ZERO, remaining=ZERO)
        if hold is None or not hold.is_open:
            return _refuse_or_cancel(uow, decision, account, HoldStatus.SETTLED, actor)
        now, settled_before = uow.now(), hold.settled
        part = hold.settle(amount, settlement_id, part_id=uuid4().hex, now=now)
        uow.holds.add_settlement(part)
        uow.holds.save(hold)  # exposure does not change: the settled part counts as the held part did
        uow.accounts.save(account)
        uow.audit.append(
            "hold.settled",
            at=now,
            actor=actor,
            subject={**decision_subject(decision), "hold_id": hold.id},
            before={"status": HoldStatus.OPEN.value, "settled_amount": settled_before},
            after={
                "status": hold.status.value,
                "settled_amount": hold.settled,
                "part": part.amount,
                "settlement_id": settlement_id,
            },
        )
        uow.commit()
    return decision


def release_order(
    order_id: str,
    *,
    customer_code: str | None = None,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
    actor: Actor = SYSTEM,
) -> Decision:
    """Cancel the rest of the order: what is still held stops counting at once (settled parts keep
    counting until a balance includes them), or its deferral ends."""
    with uow:
        decision, account = _locked(uow, order_id, customer_code, scope)
        hold = decision.hold
        if hold is not None and hold.status is HoldStatus.RELEASED:
            return decision  # a retry: the same answer, nothing changed
        if hold is None or not hold.is_open:
            return _refuse_or_cancel(uow, decision, account, HoldStatus.RELEASED, actor)
        now = uow.now()
        released = hold.end_remainder(HoldStatus.RELEASED, now)
        account.exposure -= released
        uow.holds.save(hold)
        uow.accounts.save(account)
        uow.audit.append(
            "hold.released",
            at=now,
            actor=actor,
            subject={**decision_subject(decision), "hold_id": hold.id},
            before={"status": HoldStatus.OPEN.value},
            after={"status": hold.status.value, "released": released, "account_exposure": account.exposure},
        )
        uow.commit()
    return decision


def _locked(
    uow: UnitOfWork, order_id: str, customer_code: str | None, scope: frozenset[str] | None
) -> tuple[Decision, CreditAccount]:
    """The decision read again under its account's lock, with holds past their time ended first."""
    first = visible_decision(uow, order_id, scope, customer_code)
    account = uow.accounts.lock(first.order.customer_code, first.order.sale_group_code)
    assert account is not None
    now = uow.now()  # the database's time: a snapshot as of a later moment includes this settlement
    expire_due_holds(uow, account, now)
    return visible_decision(uow, order_id, scope, first.order.customer_code), account


def _refuse_or_cancel(
    uow: UnitOfWork, decision: Decision, account: CreditAccount, target: HoldStatus, actor: Actor
) -> Decision:
    """No open hold: a release cancels a deferral; anything else is a conflict naming the state."""
    hold = decision.hold
    if hold is None and target is HoldStatus.RELEASED and decision.state is DecisionState.DEFERRED:
        decision.state = DecisionState.CANCELLED
        uow.decisions.update(decision)
        uow.accounts.save(account)
        uow.audit.append(
            "deferral.cancelled",
            at=uow.now(),
            actor=actor,
            subject=decision_subject(decision),
            before={"state": DecisionState.DEFERRED.value},
            after={"state": DecisionState.CANCELLED.value},
        )
        uow.commit()
        return decision
    uow.accounts.save(account)  # holds that expired on the way stay expired
    uow.commit()
    if hold is not None:
        raise HoldNotOpen(decision.order_id, hold.status.value)
    state = decision.state
    raise HoldNotOpen(
        decision.order_id,
        state.value if state is not DecisionState.DECIDED else f"{decision.outcome.value}, without a hold",
    )
