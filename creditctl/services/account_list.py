"""The accounts list: every account the caller may see, searched, sorted and paged, with the figures
the exposure report gives for it (the same computation, so the list and the report agree)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from creditctl.domain.errors import InvalidRequest
from creditctl.ports.reports import ReportQueries
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.reports_exposure import AccountLine, account_line, rules_for

SORTS = ("customer", "name", "balance", "exposure", "available", "limit", "grade", "status")
MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class AccountRow:
    line: AccountLine
    customer_name: str


@dataclass(frozen=True, slots=True)
class AccountsPage:
    rows: list[AccountRow]
    total: int  # rows matching the search, over every page
    offset: int
    limit: int


def _key(sort: str, row: AccountRow) -> tuple[object, ...]:
    line, account = row.line, row.line.account
    missing = Decimal("-1e30")  # accounts without the figure sort first when ascending
    by: dict[str, object] = {
        "customer": account.customer_code,
        "name": row.customer_name.casefold(),
        "balance": account.snapshot.amount if account.snapshot else missing,
        "exposure": line.exposure,
        "available": line.available if line.available is not None else missing,
        "limit": line.credit_limit,
        "grade": line.credit_grade,
        "status": account.status.value,
    }
    return (by[sort], account.customer_code, account.sale_group_code)


def list_accounts(
    *,
    search: str = "",
    sort: str = "customer",
    descending: bool = False,
    offset: int = 0,
    limit: int = 50,
    scope: frozenset[str] | None,
    reports: ReportQueries,
    uow: UnitOfWork,
) -> AccountsPage:
    """Accounts whose customer code, customer name, sales group or payer name contains `search`."""
    if sort not in SORTS:
        raise InvalidRequest(f"sort must be one of {', '.join(SORTS)}", field="sort")
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise InvalidRequest(f"limit must be 1 to {MAX_PAGE} and offset not negative", field="limit")
    with uow:
        now = uow.now()
        names = uow.customers.names()
    needle = search.strip().casefold()
    rows = []
    exposures = reports.exposures(now, scope)
    with uow:
        for e in exposures:
            a = e.account
            name = names.get(a.customer_code, "")
            text = f"{a.customer_code} {name} {a.sale_group_code} {a.sale_group_name} {a.payer_account_name}"
            if needle in text.casefold():
                line = account_line(a, e.exposure_fen, e.open_holds, rules_for(uow, a), now)
                rows.append(AccountRow(line, name))
    rows.sort(key=lambda r: _key(sort, r), reverse=descending)
    return AccountsPage(rows[offset : offset + limit], len(rows), offset, limit)
