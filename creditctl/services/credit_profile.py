"""The credit profile of an account: payment facts, grade and limit, recomputed when their inputs change.

Triggers: payments posted (post_payments), a base limit set (set_base_limit), an approved credit limit
request (decide_limit_request), and the date: the stored facts hold until the next UTC midnight, after which
the first decision, recheck or balance refresh on the account recomputes them under its lock (payment facts
depend on today's date; the balance average moves with new snapshots). Every recompute that changes the
result, and every explicit change, is kept in the account's credit history with its inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from uuid import uuid4

from creditctl.domain.account import CreditAccount, PaymentProfile
from creditctl.domain.assessment import effective_params
from creditctl.domain.audit import SYSTEM, Actor
from creditctl.domain.audit_records import account_subject
from creditctl.domain.authority import Act, Principal, authorize, base_limit_act, scope_of, who_name
from creditctl.domain.credit import CreditTerms, ProfileChange, credit_terms, describe_inputs, grade_bands
from creditctl.domain.errors import InvalidRequest, UnknownAccount, UnknownCustomer
from creditctl.domain.money import MAX_AMOUNT
from creditctl.domain.payment import payment_facts
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.named_accounts import open_named_account


def account_params(uow: UnitOfWork, account: CreditAccount) -> dict[str, Decimal]:
    """The parameters that apply to the account: its assigned rule set's, with its own overrides."""
    applicable = uow.rule_sets.for_account(account.customer_code, account.sale_group_code)
    return effective_params(applicable.rule_set.rules, account)


def recompute_profile(
    uow: UnitOfWork,
    account: CreditAccount,
    params: Mapping[str, Decimal],
    now: datetime,
    *,
    trigger: str,
    by: str,
    reason: str | None = None,
    limit_before: Decimal | None = None,
    actor: Actor = SYSTEM,
) -> bool:
    """Recompute the stored facts and average balance at the database's `now` (the caller holds the lock
    and saves the account); record a history entry when the result or an explicit input changed, and a
    `credit.limit_changed` event when the limit moved (from `limit_before`, the limit before the caller
    changed an input, else the limit as stored)."""
    before = _result(account, params, now)
    if limit_before is None:
        limit_before = credit_terms(account, params, now).limit
    account.payment = live_payment_facts(uow, account, params, now)
    window = timedelta(days=int(params.get("avg_balance_window_days", 90)))
    account.credit.average_balance = uow.balance_history.average(account.id, now - window)
    account.credit.computed_at = now
    account.credit.valid_until = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), UTC)
    terms = credit_terms(account, params, now)
    changed = _result(account, params, now) != before
    if changed or trigger != "daily":
        uow.credit_history.add(
            account.id,
            ProfileChange(
                at=now,
                trigger=trigger,
                by=by,
                reason=reason,
                grade=terms.grade,
                limit=terms.limit,
                inputs=describe_inputs(account, terms),
            ),
        )
        uow.audit.append(
            "credit_profile.changed",
            at=now,
            actor=actor,
            subject=account_subject(account),
            before={
                "payment": before[0],
                "average_balance": before[1],
                "grade": before[2],
                "limit": before[3],
            },
            after={
                "trigger": trigger,
                "reason": reason,
                "grade": terms.grade,
                "limit": terms.limit,
                "payment": account.payment,
                "average_balance": account.credit.average_balance,
                "base_limit": account.credit.base_limit,
                "temporary_limit": account.credit.temporary_limit,
                "temporary_until": account.credit.temporary_until,
            },
        )
    if terms.limit != limit_before:
        _limit_changed(uow, account, limit_before, terms, now, trigger=trigger, by=by, reason=reason)
    return changed


def _limit_changed(
    uow: UnitOfWork,
    account: CreditAccount,
    limit_before: Decimal,
    terms: CreditTerms,
    now: datetime,
    *,
    trigger: str,
    by: str,
    reason: str | None,
) -> None:
    uow.outbox.add(
        event_id=uuid4().hex,
        topic="credit.limit_changed",
        payload={
            "customer_code": account.customer_code,
            "sale_group_code": account.sale_group_code,
            "limit_before": format(limit_before, "f"),
            "limit": format(terms.limit, "f"),
            "grade": terms.grade,
            "trigger": trigger,
            "by": by,
            "reason": reason,
        },
        now=now,
    )


def live_payment_facts(
    uow: UnitOfWork, account: CreditAccount, params: Mapping[str, Decimal], now: datetime
) -> PaymentProfile:
    """The payment facts from the account's records at `now` (one query)."""
    today = now.astimezone(UTC).date()
    window_days = int(params.get("payment_window_days", 365))
    records = uow.payments.for_facts(account.id, today - timedelta(days=window_days))
    return payment_facts(records, today, window_days)


def _result(account: CreditAccount, params: Mapping[str, Decimal], now: datetime) -> tuple[object, ...]:
    t = credit_terms(account, params, now)
    return (account.payment, account.credit.average_balance, t.grade, t.limit)


def locked_account(
    uow: UnitOfWork, customer_code: str, sale_group_code: str, scope: frozenset[str] | None
) -> CreditAccount:
    """The account locked, or not found (also for a customer outside the caller's scope)."""
    if scope is not None and customer_code not in scope:
        raise UnknownCustomer(customer_code)
    account = uow.accounts.lock(customer_code, sale_group_code)
    if account is None:
        raise UnknownAccount(customer_code, sale_group_code)
    return account


def set_base_limit(
    customer_code: str,
    sale_group_code: str,
    *,
    base_limit: Decimal | None,
    reason: str,
    who: Principal,
    uow: UnitOfWork,
    actor: Actor = SYSTEM,
    balances: BalanceProvider | None = None,
) -> None:
    """Set the account's base credit limit (None: back to the rule parameter base_credit_limit).

    Lowering is any administrator's; raising the effective base (what the limit is computed from) needs
    global authority: a key limited to the customer asks for a temporary limit, which another owner
    approves (the authority table, creditctl/domain/authority.py)."""
    if not reason.strip():
        raise InvalidRequest("a reason is required", field="reason")
    if base_limit is not None and not Decimal(0) <= base_limit <= MAX_AMOUNT:
        raise InvalidRequest("base_limit must be between 0.00 and 1000000000000.00", field="base_limit")
    authorize(Act.LOWER_BASE_LIMIT, who)
    open_named_account(uow, balances, customer_code, sale_group_code, scope_of(who))
    with uow:
        account = locked_account(uow, customer_code, sale_group_code, scope_of(who))
        now = uow.now()
        params = account_params(uow, account)
        terms_before = credit_terms(account, params, now)
        account.credit.base_limit = base_limit
        account.credit.base_limit_reason = reason if base_limit is not None else None
        terms_after = credit_terms(account, params, now)
        pins = terms_before.base_source == "rule_set" and terms_after.base_source == "account"
        authorize(base_limit_act(terms_before.base, terms_after.base, pins_rule_value=pins), who)
        recompute_profile(
            uow,
            account,
            params,
            now,
            trigger="base_limit",
            by=who_name(who),
            reason=reason,
            limit_before=terms_before.limit,
            actor=actor,
        )
        uow.accounts.save(account)
        uow.commit()


@dataclass(frozen=True, slots=True)
class CreditProfileView:
    account: CreditAccount
    payment: PaymentProfile  # live, at `now`
    terms: CreditTerms
    params: dict[str, Decimal]
    now: datetime
    history: list[ProfileChange]
    bands: tuple[object, ...]


def view_credit_profile(
    customer_code: str,
    sale_group_code: str,
    *,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
    history: int = 50,
    balances: BalanceProvider | None = None,
) -> CreditProfileView:
    """How credit.limit is computed now: the facts from the payment records, the band, base, cap, result."""
    if scope is not None and customer_code not in scope:
        raise UnknownCustomer(customer_code)
    open_named_account(uow, balances, customer_code, sale_group_code, scope)
    with uow:
        account = uow.accounts.get(customer_code, sale_group_code)
        if account is None:
            raise UnknownAccount(customer_code, sale_group_code)
        now = uow.now()
        params = account_params(uow, account)
        account.payment = live_payment_facts(uow, account, params, now)
        if account.credit.is_stale(now):
            window = timedelta(days=int(params.get("avg_balance_window_days", 90)))
            account.credit.average_balance = uow.balance_history.average(account.id, now - window)
        changes = uow.credit_history.latest(account.id, history)
    return CreditProfileView(
        account=account,
        payment=account.payment,
        terms=credit_terms(account, params, now),
        params=params,
        now=now,
        history=changes,
        bands=grade_bands(params),
    )
