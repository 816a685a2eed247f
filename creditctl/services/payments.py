"""Payment records posted per account: idempotent by invoice id, every change kept, the profile recomputed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from creditctl.domain.audit import SYSTEM, Actor
from creditctl.domain.audit_records import account_subject
from creditctl.domain.authority import Act, Principal, authorize, scope_of
from creditctl.domain.errors import InvalidRequest, UnknownAccount, UnknownCustomer
from creditctl.domain.payment import PaymentRecord
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.credit_profile import account_params, locked_account, recompute_profile
from creditctl.services.named_accounts import open_named_account

MAX_BATCH = 1000


@dataclass(frozen=True, slots=True)
class PostPayments:
    customer_code: str
    sale_group_code: str
    records: Sequence[PaymentRecord]
    by: str
    # partial: refuse bad records one by one and store the rest (the CSV import); else all or nothing
    partial: bool = False


@dataclass(slots=True)
class PaymentBatchResult:
    results: list[tuple[str, str]] = field(default_factory=list)  # (invoice_id, created|updated|unchanged)
    refused: dict[int, dict[str, list[str]]] = field(default_factory=dict)  # index → field → messages

    def count(self, result: str) -> int:
        return sum(1 for _, r in self.results if r == result)


def post_payments(
    cmd: PostPayments,
    *,
    who: Principal,
    uow: UnitOfWork,
    actor: Actor = SYSTEM,
    balances: BalanceProvider | None = None,
) -> PaymentBatchResult:
    """Store each record: new invoice → created; same figures → unchanged (nothing written); other figures
    → updated, with a history row (before, after, who, when). Then recompute the credit profile.

    Payment records are finance's facts (they move the grade, so the limit): only the finance role posts
    them, never a key limited to the customer they describe."""
    authorize(Act.POST_PAYMENTS, who)
    scope = scope_of(who)
    if not cmd.records or len(cmd.records) > MAX_BATCH:
        raise InvalidRequest(f"send 1 to {MAX_BATCH} payment records", field="payments")
    out = PaymentBatchResult()
    open_named_account(uow, balances, cmd.customer_code, cmd.sale_group_code, scope)
    with uow:
        account = locked_account(uow, cmd.customer_code, cmd.sale_group_code, scope)
        now = uow.now()
        out.refused = _problems(cmd.records, now.date())
        if out.refused and not cmd.partial:
            raise InvalidRequest(
                f"{len(out.refused)} of {len(cmd.records)} payment records are invalid; nothing was stored",
                errors={f"payments.{i}.{f}": m for i, p in out.refused.items() for f, m in p.items()},
            )
        accepted = [r for i, r in enumerate(cmd.records) if i not in out.refused]
        stored = uow.payments.get_many(account.id, [r.invoice_id for r in accepted])
        for record in accepted:
            before = stored.get(record.invoice_id)
            if before == record:
                out.results.append((record.invoice_id, "unchanged"))
                continue
            uow.payments.put(account.id, record, existed=before is not None, now=now)
            uow.payments.add_change(account.id, before, record, by=cmd.by, now=now)
            stored[record.invoice_id] = record
            out.results.append((record.invoice_id, "created" if before is None else "updated"))
        if any(r != "unchanged" for _, r in out.results):
            params = account_params(uow, account)
            recompute_profile(uow, account, params, now, trigger="payments", by=cmd.by, actor=actor)
            uow.accounts.save(account)
            uow.audit.append(
                "payments.posted",
                at=now,
                actor=actor,
                subject=account_subject(account),
                after={"invoices": {i: r for i, r in out.results if r != "unchanged"}},
            )
        uow.commit()
    return out


def _problems(records: Sequence[PaymentRecord], today: date) -> dict[int, dict[str, list[str]]]:
    """Problems by index; an invoice listed twice with other figures is refused the second time."""
    out: dict[int, dict[str, list[str]]] = {}
    seen: dict[str, PaymentRecord] = {}
    for i, r in enumerate(records):
        problems = r.problems(today)
        first = seen.setdefault(r.invoice_id, r)
        if first != r:
            problems.setdefault("invoice_id", []).append(
                f"invoice {r.invoice_id!r} is listed earlier with other figures"
            )
        if problems:
            out[i] = problems
    return out


@dataclass(frozen=True, slots=True)
class PaymentPage:
    items: list[PaymentRecord]
    next_cursor: str | None


def list_payments(
    customer_code: str,
    sale_group_code: str,
    *,
    after: str | None,
    limit: int,
    scope: frozenset[str] | None,
    uow: UnitOfWork,
    balances: BalanceProvider | None = None,
) -> PaymentPage:
    """A page of the account's records by invoice id; next_cursor is the last id when more may follow."""
    if scope is not None and customer_code not in scope:
        raise UnknownCustomer(customer_code)
    open_named_account(uow, balances, customer_code, sale_group_code, scope)
    with uow:
        account = uow.accounts.get(customer_code, sale_group_code)
        if account is None:
            raise UnknownAccount(customer_code, sale_group_code)
        items = uow.payments.page(account.id, after=after, limit=limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return PaymentPage(items, items[-1].invoice_id if more else None)
