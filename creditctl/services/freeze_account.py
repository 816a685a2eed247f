"""Freezing and unfreezing an account by hand: every order on a frozen account is blocked.

Freezing takes credit away, so any administrator who sees the account may; lifting a freeze gives it back,
so only the owner who set it may lift it with a key limited to the customer: a freeze another owner (the
head office) or the rules set needs a key not limited to customers (creditctl/domain/authority.py)."""

from __future__ import annotations

from creditctl.domain.account import CreditAccount
from creditctl.domain.audit import SYSTEM, Actor
from creditctl.domain.audit_records import account_status, account_subject
from creditctl.domain.authority import Act, NotAuthorised, Principal, authorize, freezer, froze_it, scope_of
from creditctl.domain.errors import AlreadyFrozen, InvalidRequest, UnknownAccount, UnknownCustomer
from creditctl.domain.freeze import LiftedHow
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.freeze_history import record_freeze, record_lift
from creditctl.services.named_accounts import open_named_account


def freeze_account(
    customer_code: str,
    sale_group_code: str,
    *,
    reason: str,
    who: Principal,
    uow: UnitOfWork,
    actor: Actor = SYSTEM,
    balances: BalanceProvider | None = None,
) -> CreditAccount:
    """Freeze with a stated reason, recorded as the owner's (`admin:<owner>`).

    On an account already frozen: the same reason again is a no-op (a retried request); a freeze the
    rules made is taken over (the account stays frozen, now by this administrator for this reason, so the
    rules no longer lift it); another administrator's freeze with another reason is refused with
    AlreadyFrozen naming it (since when, by whom, why): unfreeze first to change the reason."""
    _require_reason(reason)
    authorize(Act.FREEZE, who)
    by = freezer(who)
    open_named_account(uow, balances, customer_code, sale_group_code, scope_of(who))
    with uow:
        account = _locked(uow, customer_code, sale_group_code, scope_of(who))
        if account.is_frozen and (account.frozen_reason or "").strip() == reason.strip():
            return account
        # Taking over the rules' freeze ends it (they no longer lift it, but the owner could): only for
        # those who may lift another's freeze; the others are told whose freeze it is.
        takes_over_rule = (account.frozen_by or "").startswith("rule:") and _may(Act.LIFT_OTHERS_FREEZE, who)
        if account.is_frozen and not takes_over_rule:
            raise AlreadyFrozen(
                customer_code,
                sale_group_code,
                reason=account.frozen_reason or "",
                by=account.frozen_by or "unknown",
                since=account.frozen_at.isoformat() if account.frozen_at else "unknown",
            )
        before = account_status(account)
        now = uow.now()
        if account.is_frozen:  # a freeze the rules made: this one takes it over
            record_lift(uow, account, how=LiftedHow.REPLACED, by=by, reason=reason, now=now)
        record_freeze(uow, account, reason=reason, by=by, now=now)
        uow.accounts.save(account)
        uow.audit.append(
            "account.frozen",
            at=now,
            actor=actor,
            subject=account_subject(account),
            before=before,
            after=account_status(account),
        )
        uow.commit()
    return account


def unfreeze_account(
    customer_code: str,
    sale_group_code: str,
    *,
    reason: str,
    who: Principal,
    uow: UnitOfWork,
    actor: Actor = SYSTEM,
    balances: BalanceProvider | None = None,
) -> CreditAccount:
    """Lift a freeze: the owner's own with any of their keys, anyone else's (or the rules') with global
    authority."""
    _require_reason(reason)
    authorize(Act.LIFT_OWN_FREEZE, who)
    open_named_account(uow, balances, customer_code, sale_group_code, scope_of(who))
    with uow:
        account = _locked(uow, customer_code, sale_group_code, scope_of(who))
        if account.is_frozen:
            authorize(
                Act.LIFT_OWN_FREEZE if froze_it(account.frozen_by, who) else Act.LIFT_OTHERS_FREEZE, who
            )
            before = account_status(account)
            record_lift(uow, account, how=LiftedHow.MANUAL, by=freezer(who), reason=reason, now=uow.now())
            uow.accounts.save(account)
            uow.audit.append(
                "account.unfrozen",
                at=uow.now(),
                actor=actor,
                subject=account_subject(account),
                before=before,
                after={**account_status(account), "reason": reason},
            )
            uow.commit()
    return account


def _may(act: Act, who: Principal) -> bool:
    try:
        authorize(act, who)
    except NotAuthorised:
        return False
    return True


def _require_reason(reason: str) -> None:
    if not reason or not reason.strip():
        raise InvalidRequest("a reason is required", field="reason")


def _locked(
    uow: UnitOfWork, customer_code: str, sale_group_code: str, scope: frozenset[str] | None
) -> CreditAccount:
    if scope is not None and customer_code not in scope:
        raise UnknownCustomer(customer_code)
    account = uow.accounts.lock(customer_code, sale_group_code)
    if account is None:
        raise UnknownAccount(customer_code, sale_group_code)
    return account
