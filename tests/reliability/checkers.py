"""The two invariant checkers every reliability test ends with (reliability-tests.md, conventions).

Inside (`check_inside`): the service's own bookkeeping, read from its tables in one snapshot
(tests/invariants.py: counting holds within the snapshot plus the credit limit, every hold in exactly one
state, at most one decision per order id), and the audit chain: every committed event sealed, then the
chain walked by the service's own verifier. Outside (`check_outside`): the upstream's own ledger against
what the order systems were told (tests/outside_checker.py), blind to creditctl's tables, so a wrong
bookkeeping cannot vouch for itself.

Both return readable violations; `assert_checkers` fails with all of them and the seed to replay the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from adapters.sql.unit_of_work import SqlUnitOfWork
from creditctl.services.audit import seal_audit_outcome, verify_audit
from tests.invariants import check_invariants
from tests.ledger_upstream import Account, LedgerUpstream
from tests.outside_checker import OutsideBooks


def check_inside(engine: Engine) -> list[str]:
    """Every violation of the service's own invariants, audit chain included; empty when sound."""
    out = check_invariants(engine)
    return out + check_audit_chain(engine)


def check_audit_chain(engine: Engine) -> list[str]:
    """Seal what is committed (as the worker would), then verify the whole chain from its first seal.

    A refused event (sealed out of order beyond the tolerance) and an event left unsealed are violations
    too: the chain does not vouch for them."""
    sealed = seal_audit_outcome(uow=SqlUnitOfWork(engine), full=True)
    out = [f"audit: event seq {r.seq} ({r.type}) refused by the sealer: {r.reason}" for r in sealed.refused]
    report = verify_audit(uow=SqlUnitOfWork(engine))
    if not report.ok:
        out.append(
            f"audit: chain broken at position {report.broken_position} (seq {report.broken_seq}, "
            f"{report.broken_type}): {report.problem}"
        )
    if report.unsealed:
        out.append(f"audit: {report.unsealed} event(s) still unsealed after sealing")
    if not report.complete:
        out.append(f"audit: the walk stopped after {report.checked} events")
    return out


def check_outside(books: OutsideBooks) -> list[str]:
    """Every overspend the upstream's ledger shows, during the run and at its end; empty when sound."""
    return books.problems()


def assert_checkers(engine: Engine, books: OutsideBooks, seed: int | None = None) -> None:
    """Both checkers pass; on failure every violation is listed with the seed that replays the run."""
    inside, outside = check_inside(engine), check_outside(books)
    replay = f" (replay with CREDITCTL_TEST_SEED={seed})" if seed is not None else ""
    assert not inside and not outside, (
        f"{len(inside)} inside and {len(outside)} outside violation(s){replay}:\n"
        + "\n".join([*inside[:40], *outside[:40]])
    )


def starting_money(entries: Mapping[str, list[dict[str, Any]]]) -> dict[Account, Decimal]:
    """Each (customer, group)'s money from balance entries in the upstream's shape (the fake provider's
    TEST_BALANCES, the emulator's): what a test whose upstream is not a ledger starts every account with."""
    out: dict[Account, Decimal] = {}
    for customer, rows in entries.items():
        for row in rows:
            key = (customer, row["saleGroupCode"])
            out[key] = out.get(key, Decimal("0.00")) + Decimal(str(row["payerAccountBalance"]))
    return out


def books_for(
    accounts: Mapping[Account, Decimal], credit_limits: Mapping[Account, Decimal] | None = None
) -> OutsideBooks:
    """Outside books for a test whose upstream is not a LedgerUpstream (a fake provider, the emulator): a
    ledger opened with each account's starting money, against which the approvals the clients saw count.
    A test that changes an upstream balance tells the books too (`pay`), or the outside check is unfair."""
    ledger = LedgerUpstream()
    for (customer, group), money in accounts.items():
        ledger.open_account(customer, group, money)
    return OutsideBooks(ledger, dict(credit_limits or {}))


def saw_answer(books: OutsideBooks, answer: Mapping[str, Any]) -> bool:
    """Record a decision's 2xx JSON answer as its client saw it; True when it approves."""
    if answer.get("outcome") != "approve":
        return False
    account = (answer["customer_code"], answer["sale_group_code"])
    books.approval(answer["order_id"], account, Decimal(answer["amount"]))
    return True
