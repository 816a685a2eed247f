"""Credit limit requests: one administrator asks for a temporary limit, another approves or rejects it.

While approved and before `until` (the database's clock), credit.limit = max(profile limit, amount). The
approved amount and its end are stored on the account row, so decisions read them with the lock; the
limit ends by itself at `until` (a decision compares it with its own time; nothing needs to sweep). A new
approval on an account replaces the running one (that request becomes "superseded")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import uuid4

from creditctl.domain.api_key import ApiKey, same_owner
from creditctl.domain.audit import Actor, key_actor
from creditctl.domain.authority import Act, authorize, require_approval_authority
from creditctl.domain.credit import credit_terms
from creditctl.domain.errors import (
    InvalidRequest,
    LimitRequestNotPending,
    OwnRequest,
    UnknownAccount,
    UnknownCustomer,
    UnknownLimitRequest,
)
from creditctl.domain.limit_request import CreditLimitRequest, LimitRequestStatus
from creditctl.domain.money import MAX_AMOUNT
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.credit_profile import account_params, locked_account, recompute_profile
from creditctl.services.named_accounts import open_named_account

STATUSES = ("pending", "approved", "rejected", "superseded", "expired")
# A temporary limit is temporary: beyond this, a line is a base limit, which only global authority sets.
MAX_TEMPORARY = timedelta(days=366)


@dataclass(frozen=True, slots=True)
class RequestLimit:
    customer_code: str
    sale_group_code: str
    amount: Decimal
    until: datetime
    reason: str


def request_limit(
    cmd: RequestLimit,
    *,
    key: ApiKey,
    uow: UnitOfWork,
    actor: Actor | None = None,
    balances: BalanceProvider | None = None,
) -> tuple[CreditLimitRequest, datetime]:
    """Record a pending request; `until` must be ahead of the database's clock."""
    authorize(Act.REQUEST_TEMPORARY_LIMIT, key)
    if not Decimal("0") < cmd.amount <= MAX_AMOUNT:
        raise InvalidRequest("amount must be above 0.00 and at most 1000000000000.00", field="amount")
    if not cmd.reason.strip():
        raise InvalidRequest("a reason is required", field="reason")
    open_named_account(uow, balances, cmd.customer_code, cmd.sale_group_code, key.customers)
    with uow:
        account = locked_account(uow, cmd.customer_code, cmd.sale_group_code, key.customers)
        now = uow.now()
        if cmd.until <= now:
            raise InvalidRequest(f"until must be after now ({now.isoformat()})", field="until")
        if cmd.until > now + MAX_TEMPORARY:
            raise InvalidRequest(
                f"a temporary limit lasts at most {MAX_TEMPORARY.days} days: until must be at most "
                f"{(now + MAX_TEMPORARY).isoformat()} (a longer line is a base limit, a global act)",
                field="until",
            )
        request = CreditLimitRequest(
            id=uuid4().hex,
            account_id=account.id,
            customer_code=account.customer_code,
            sale_group_code=account.sale_group_code,
            amount=cmd.amount,
            until=cmd.until,
            reason=cmd.reason,
            status=LimitRequestStatus.PENDING,
            requested_by=key.name,
            requested_by_key_id=key.id,
            requested_by_owner=key.owner,
            requested_at=now,
        )
        uow.limit_requests.add(request)
        _record(uow, "limit_request.requested", request, now, actor or _key_actor(key), None)
        uow.commit()
    return request, now


def decide_limit_request(
    request_id: str,
    *,
    approve: bool,
    note: str | None,
    key: ApiKey,
    uow: UnitOfWork,
    actor: Actor | None = None,
) -> tuple[CreditLimitRequest, datetime]:
    """Approve or reject a pending request as another owner than the requester's (four eyes: two
    people, whichever keys each holds)."""
    authorize(Act.DECIDE_TEMPORARY_LIMIT, key)
    with uow:
        request = uow.limit_requests.get(request_id)
        if request is None or not key.may_see(request.customer_code):
            raise UnknownLimitRequest(request_id)
        if request.requested_by_key_id == key.id or same_owner(request.requested_by_owner, key.owner):
            raise OwnRequest(request_id, request.requested_by_owner)
        account = locked_account(uow, request.customer_code, request.sale_group_code, key.customers)
        request = uow.limit_requests.get(request_id)  # again under the account's lock
        assert request is not None
        now = uow.now()
        if request.status is not LimitRequestStatus.PENDING:
            raise LimitRequestNotPending(request_id, request.shown_status(now))
        if approve and request.until <= now:
            raise InvalidRequest(f"the request ran out at {request.until.isoformat()}", field="until")
        if approve:
            require_approval_authority(Act.DECIDE_TEMPORARY_LIMIT, key, request.amount)
        request.status = LimitRequestStatus.APPROVED if approve else LimitRequestStatus.REJECTED
        request.decided_by, request.decided_by_key_id, request.decided_at = key.name, key.id, now
        request.decided_by_owner = key.owner
        request.note = note
        if approve:
            _supersede(uow, account.credit.temporary_request_id, now)
            params = account_params(uow, account)
            before = credit_terms(account, params, now).limit
            account.credit.temporary_limit = request.amount
            account.credit.temporary_until = request.until
            account.credit.temporary_request_id = request.id
            recompute_profile(
                uow,
                account,
                params,
                now,
                trigger="limit_request",
                by=key.name,
                reason=request.reason,
                limit_before=before,
                actor=actor or _key_actor(key),
            )
            uow.accounts.save(account)
        uow.limit_requests.save(request)
        _record(
            uow, f"limit_request.{request.status.value}", request, now, actor or _key_actor(key), "pending"
        )
        uow.commit()
    return request, now


def _key_actor(key: ApiKey) -> Actor:
    return key_actor(key)


def _record(
    uow: UnitOfWork, type_: str, request: CreditLimitRequest, now: datetime, actor: Actor, before: str | None
) -> None:
    uow.audit.append(
        type_,
        at=now,
        actor=actor,
        subject={
            "customer_code": request.customer_code,
            "sale_group_code": request.sale_group_code,
            "limit_request_id": request.id,
        },
        before=None if before is None else {"status": before},
        after={
            "status": request.status.value,
            "amount": request.amount,
            "until": request.until,
            "requested_by_owner": request.requested_by_owner,
            "decided_by_owner": request.decided_by_owner,
            "reason": request.reason,
            "note": request.note,
        },
    )


def _supersede(uow: UnitOfWork, request_id: str | None, now: datetime) -> None:
    previous = uow.limit_requests.get(request_id) if request_id else None
    if previous is not None and previous.status is LimitRequestStatus.APPROVED and previous.until > now:
        previous.status = LimitRequestStatus.SUPERSEDED
        uow.limit_requests.save(previous)


def list_limit_requests(
    *,
    customer_code: str | None,
    sale_group_code: str | None,
    status: str | None,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
    balances: BalanceProvider | None = None,
) -> tuple[list[CreditLimitRequest], datetime]:
    """Requests of one account (customer and sales group given) or of every account the caller sees."""
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}", field="status")
    if customer_code is not None and sale_group_code is not None:
        open_named_account(uow, balances, customer_code, sale_group_code, scope)
    with uow:
        account_id = None
        if customer_code is not None and sale_group_code is not None:
            if scope is not None and customer_code not in scope:
                raise UnknownCustomer(customer_code)
            account = uow.accounts.get(customer_code, sale_group_code)
            if account is None:
                raise UnknownAccount(customer_code, sale_group_code)
            account_id = account.id
        now = uow.now()
        found = uow.limit_requests.find(account_id=account_id, customers=scope, status=status, now=now)
    return found, now
