"""The Jepsen-bank workload (reliability-tests.md item 1), shared by its test and by any test that needs a
database full of contended decisions: workers each send a planned list of orders on a few accounts whose
ledgers carry about 30 % of what is asked, a fifth of them reusing an order id already sent (same body: a
replay; another amount: a conflict). The plan comes from the seed alone."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine

from adapters.bootstrap import Settings, bootstrap
from creditctl.domain.decision import Order
from creditctl.domain.errors import OrderIdReused
from creditctl.services.context import AppContext
from creditctl.services.customers import refresh_balances, register_customer
from creditctl.services.decide_order import DecisionResult, decide_order
from rules import Outcome
from tests.adapters.concurrency import all_at_once
from tests.clocks import SkewedClock
from tests.ledger_upstream import Account, LedgerUpstream
from tests.outside_checker import OutsideBooks

ACCOUNTS: list[Account] = [
    ("8800000001", "GA10"),
    ("8800000001", "GB20"),
    ("8800000002", "GA10"),
    ("8800000003", "GA10"),
    ("8800000003", "GC30"),
]
REUSE = 0.20
CARRIED = Decimal("0.30")  # each ledger carries about this share of what the run asks of it


@dataclass(frozen=True)
class Request:
    worker: int
    step: int
    order: Order


Answer = DecisionResult | OrderIdReused


def plan_requests(seed: int, workers: int, per_worker: int) -> list[list[Request]]:
    """Every worker's requests, decided by the seed alone."""
    rng = random.Random(seed)
    plan: list[list[Request]] = [[] for _ in range(workers)]
    earlier: list[Order] = []
    for step in range(per_worker):
        planned_now = []
        for worker in range(workers):
            if earlier and rng.random() < REUSE:
                old = rng.choice(earlier)
                amount = old.amount if rng.random() < 0.5 else old.amount + Decimal("0.01")
                order = Order(old.order_id, old.customer_code, old.sale_group_code, amount)
            else:
                customer, group = rng.choice(ACCOUNTS)
                amount = Decimal(rng.randint(1000, 19000)) / 100
                order = Order(f"bank-{seed}-{worker}-{step}", customer, group, amount)
                planned_now.append(order)
            plan[worker].append(Request(worker, step, order))
        earlier.extend(planned_now)
    return plan


def starting_money(plan: list[list[Request]]) -> dict[Account, Decimal]:
    """About 30 % of what the plan's new orders ask of each account."""
    asked: dict[Account, Decimal] = defaultdict(Decimal)
    seen: set[str] = set()
    for requests in plan:
        for r in requests:
            if r.order.order_id not in seen:
                seen.add(r.order.order_id)
                asked[(r.order.customer_code, r.order.sale_group_code)] += r.order.amount
    return {a: (asked[a] * CARRIED).quantize(Decimal("0.01")) for a in ACCOUNTS}


def open_bank(engine: Engine, plan: list[list[Request]], tmp_path: Path) -> tuple[AppContext, OutsideBooks]:
    """One instance on `engine`, its balances from a ledger opened with the plan's starting money."""
    upstream = LedgerUpstream()
    for (customer, group), money in starting_money(plan).items():
        upstream.open_account(customer, group, money)
    clock = SkewedClock(0)
    settings = Settings(instance_path=tmp_path / "instance", database_url=str(engine.url))
    ctx = bootstrap(settings, balances=upstream.provider(clock), clock=clock, engine=engine)
    for customer in upstream.customers():
        register_customer(customer, uow=ctx.uow(), clock=clock)
        refresh_balances(customer, scope=None, uow=ctx.uow(), balances=ctx.balances, clock=clock)
    return ctx, OutsideBooks(upstream)


def run_bank(
    ctx: AppContext, books: OutsideBooks, plan: list[list[Request]], timeout_s: float
) -> dict[str, list[tuple[Request, Answer]]]:
    """Every worker sends its requests in order, each answer shown to the outside books as it comes;
    the answers grouped by order id. Anything but a decision or a clean conflict fails the run."""

    def worker(w: int) -> list[tuple[Request, Answer]]:
        answers: list[tuple[Request, Answer]] = []
        for request in plan[w]:
            try:
                result = decide_order(request.order, scope=None, uow=ctx.uow(), balances=ctx.balances)
            except OrderIdReused as exc:
                answers.append((request, exc))
                continue
            books.saw(result.decision)
            answers.append((request, result))
        return answers

    results = all_at_once(len(plan), worker, timeout_s=timeout_s)
    errors = [r.error for r in results if r.error is not None]
    assert not errors, f"{len(errors)} workers failed with other than a clean conflict: {errors[0]!r}"
    by_order: dict[str, list[tuple[Request, Answer]]] = defaultdict(list)
    for r in results:
        for request, answer in r.value:
            by_order[request.order.order_id].append((request, answer))
    return by_order


def answer_problems(by_order: dict[str, list[tuple[Request, Answer]]]) -> list[str]:
    """Each order id: one request created its decision; the same body got it back, another got 409."""
    problems = []
    for order_id, answers in by_order.items():
        created = [a for _, a in answers if isinstance(a, DecisionResult) and a.created]
        if len(created) != 1:
            problems.append(f"order {order_id}: {len(created)} requests created a decision")
            continue
        stored = created[0].decision
        for request, answer in answers:
            same_body = request.order.fingerprint() == stored.fingerprint
            if same_body and not (isinstance(answer, DecisionResult) and answer.decision.id == stored.id):
                problems.append(f"order {order_id}: a replay got {answer!r}")
            if not same_body and not isinstance(answer, OrderIdReused):
                problems.append(f"order {order_id}: a reuse with another body got {answer!r}")
    return problems


def outcome_counts(by_order: dict[str, list[tuple[Request, Answer]]]) -> Counter[Outcome]:
    return Counter(
        a.decision.outcome
        for answers in by_order.values()
        for _, a in answers
        if isinstance(a, DecisionResult) and a.created
    )
