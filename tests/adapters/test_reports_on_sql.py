"""Reports on SQLite and PostgreSQL agree with the raw rows: every figure recomputed in Python from the
tables, on generated data (seeded: CREDITCTL_TEST_SEED replays a failure)."""

from __future__ import annotations

import json
import math
import os
import random
import uuid
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, insert, select

from adapters.fake.clock import FakeClock
from adapters.sql.reports import SqlReportQueries, SqlUpstreamCallLog
from adapters.sql.tables import credit_accounts, decisions, hold_settlements, holds, upstream_calls
from creditctl.domain.errors import ReadReplicaNotReady
from creditctl.domain.money import from_fen
from creditctl.ports.reports import UpstreamCall
from creditctl.services.account_view import view_account
from creditctl.services.context import AppContext
from creditctl.services.reports_decisions import OUTCOMES, ReportRequest, decisions_report
from creditctl.services.reports_exposure import AGE_EDGES_S, exposure_report
from creditctl.services.reports_upstream import upstream_report

SEED = int(os.environ.get("CREDITCTL_TEST_SEED") or random.SystemRandom().randrange(2**32))
NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
REASONS = {
    "approve": [[], [{"rule": "low", "reason": "BALANCE_LOW", "message": "m"}]],
    "defer": [
        [{"rule": "short", "reason": "INSUFFICIENT_BALANCE", "message": "m"}],
        [{"rule": "large", "reason": "MANUAL_REVIEW", "message": "m"}],
        [
            {"rule": "stale", "reason": "BALANCE_UNAVAILABLE", "message": "m"},
            {"rule": "upstream", "reason": "UPSTREAM_TIMEOUT", "message": "m"},
        ],
    ],
    "block": [
        [{"rule": "over_limit", "reason": "CREDIT_LIMIT_EXCEEDED", "message": "m"}],
        [{"rule": "frozen", "reason": "ACCOUNT_FROZEN", "message": "m"}],
    ],
    "freeze": [[{"rule": "depleted", "reason": "BALANCE_DEPLETED", "message": "m"}]],
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, clock: FakeClock) -> tuple[AppContext, Engine]:
    clock.set(NOW)
    name = "context" if request.param == "sqlite" else "pg_context"
    return request.getfixturevalue(name), request.getfixturevalue(f"{request.param}_engine")


def generate(engine: Engine, rng: random.Random, n: int = 400) -> None:
    """Decisions over 10 days around Shanghai midnights, holds in every state, upstream calls."""
    with engine.connect() as conn:
        accounts = [(r.id, r.customer_code, r.sale_group_code) for r in conn.execute(select(credit_accounts))]
    rows: list[dict[str, Any]] = []
    hold_rows: list[dict[str, Any]] = []
    part_rows: list[dict[str, Any]] = []
    for i in range(n):
        account_id, customer, group = rng.choice(accounts)
        outcome = rng.choices(OUTCOMES, weights=(6, 2, 2, 1))[0]
        decided = NOW - timedelta(seconds=rng.randrange(0, 10 * 86400))
        decided = min(NOW, decided.replace(minute=rng.choice((0, 59, 30)), second=0))  # near day edges too
        deferred = outcome == "defer" and rng.random() < 0.7
        decision_id = str(uuid.UUID(int=rng.getrandbits(128)))
        rows.append(
            {
                "id": decision_id,
                "order_id": f"PO-{i}",
                "account_id": account_id,
                "customer_code": customer,
                "sale_group_code": group,
                "amount_fen": rng.randrange(1, 10_000_000),
                "fingerprint": "0" * 64,
                "outcome": outcome,
                "state": "deferred" if deferred else "decided",
                "reasons": rng.choice(REASONS[outcome]),
                "actions": [],
                "facts": {},
                "exposure_fen": 0,
                "credit_limit_fen": 0,
                "credit_grade": "A",
                "rule_set_id": 1,
                "rule_set_version": 1,
                "decided_at": decided,
                "deferral_expires_at": decided + timedelta(hours=rng.choice((2, 24, 72)))
                if deferred
                else None,
                "rechecks": 0,
            }
        )
        if outcome == "approve":
            hold, parts = _hold_with_parts(
                rng, account_id, decision_id, f"PO-{i}", rows[-1]["amount_fen"], decided
            )
            hold_rows.append(hold)
            part_rows += parts
    with engine.begin() as conn:
        conn.execute(insert(decisions), rows)
        conn.execute(insert(holds), hold_rows)
        if part_rows:
            conn.execute(insert(hold_settlements), part_rows)
    log = SqlUpstreamCallLog(engine)
    for _ in range(300):
        ok = rng.random() < 0.8
        log.record(
            UpstreamCall(
                called_at=NOW - timedelta(seconds=rng.randrange(0, 9 * 86400)),
                operation=rng.choice(("balance", "balance", "token")),
                config="main",
                customer_code=rng.choice(("8800000001", "8800000002")),
                status=200 if ok else rng.choice((500, 503, 429)),
                latency_ms=round(rng.uniform(5, 3000), 3),
                attempt=rng.choice((1, 1, 1, 2, 3)),
                error_code=None
                if ok
                else rng.choice(("SERVICE_UNAVAILABLE", "RATE_LIMITED", "UPSTREAM_TIMEOUT")),
            )
        )


def rate(part: int, whole: int) -> str | None:
    return (
        str((Decimal(part) / whole).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)) if whole else None
    )


def _hold_with_parts(
    rng: random.Random, account_id: int, decision_id: str, order_id: str, amount: int, created: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A hold in any state, with 0-2 settled parts (partial settlement), each counting or not."""
    status = rng.choice(("open", "open", "settled", "released", "expired"))
    n_parts = 0 if amount < 2 else rng.choice((0, 0, 1, 2) if status != "settled" else (1, 2))
    cuts = sorted(rng.sample(range(1, amount), n_parts - 1)) if n_parts > 1 else []
    if status == "settled":
        sizes = [b - a for a, b in zip([0, *cuts], [*cuts, amount], strict=True)]
    else:  # some of it settled, the rest still held, released or expired
        sizes = [rng.randrange(1, max(2, amount // 4)) for _ in range(n_parts)]
    hold_id = uuid.uuid4().hex
    parts = [
        {
            "id": uuid.uuid4().hex,
            "hold_id": hold_id,
            "account_id": account_id,
            "settlement_id": f"DN-{k}",
            "amount_fen": size,
            "settled_at": created + timedelta(minutes=k + 1),
            "counting": rng.random() < 0.5,
        }
        for k, size in enumerate(sizes)
    ]
    hold = {
        "id": hold_id,
        "account_id": account_id,
        "decision_id": decision_id,
        "order_id": order_id,
        "amount_fen": amount,
        "settled_fen": sum(sizes),
        "status": status,
        "counting": status == "open" or any(p["counting"] for p in parts),
        "created_at": created,
        "expires_at": NOW + timedelta(hours=rng.randrange(-30, 60)),
    }
    return hold, parts


def table(engine: Engine, t: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(t)))


@pytest.mark.parametrize("tz", ["Asia/Shanghai", "UTC", "America/New_York"])
def test_the_decisions_report_agrees_with_the_decision_rows(db: tuple[AppContext, Engine], tz: str) -> None:
    ctx, engine = db
    rng = random.Random(SEED)
    generate(engine, rng)
    zone = ZoneInfo(tz)
    start, end = date(2026, 11, 23), date(2026, 11, 30)
    scope = frozenset({"8800000001"}) if rng.random() < 0.5 else None

    report = decisions_report(
        ReportRequest(start, end, tz, customers=scope), reports=SqlReportQueries(engine), clock=ctx.clock
    )

    t0 = datetime(2026, 11, 23, tzinfo=zone).astimezone(UTC)
    t1 = datetime(2026, 11, 30, tzinfo=zone).astimezone(UTC)
    rows = [
        r
        for r in table(engine, decisions)
        if t0 <= r.decided_at < t1 and (scope is None or r.customer_code in scope)
    ]
    assert rows, f"no rows in the period (CREDITCTL_TEST_SEED={SEED})"
    by_day: dict[date, Counter[str]] = defaultdict(Counter)
    for r in rows:
        by_day[r.decided_at.astimezone(zone).date()][r.outcome] += 1
    assert [d for d, _ in report.by_day] == [date(2026, 11, 23) + timedelta(days=i) for i in range(7)]
    for d, tally in report.by_day:
        assert tally.counts == {o: by_day[d][o] for o in OUTCOMES}, (d, SEED)
    counts = Counter(r.outcome for r in rows)
    fen = Counter()
    for r in rows:
        fen[r.outcome] += r.amount_fen
    assert report.total.counts == {o: counts[o] for o in OUTCOMES}, SEED
    assert report.total.fen == {o: fen[o] for o in OUTCOMES}, SEED
    assert str(report.total.approval_rate) == rate(counts["approve"], len(rows))
    assert report.money == {
        "approved": from_fen(fen["approve"]),
        "deferred": from_fen(fen["defer"]),
        "blocked": from_fen(fen["block"] + fen["freeze"]),
    }
    accounts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for r in rows:
        accounts[(r.customer_code, r.sale_group_code)][r.outcome] += 1
    assert {(c, g): t.counts for c, g, t in report.by_account} == {
        k: {o: v[o] for o in OUTCOMES} for k, v in accounts.items()
    }
    groups = Counter(r.sale_group_code for r in rows)
    assert {g: t.decisions for g, t in report.by_sale_group} == dict(groups)
    for outcome in ("block", "defer", "freeze"):
        reasons = Counter(
            reason
            for r in rows
            if r.outcome == outcome
            for reason in {
                x["reason"] for x in (r.reasons if isinstance(r.reasons, list) else json.loads(r.reasons))
            }
        )
        expected = sorted(reasons.items(), key=lambda x: (-x[1], x[0]))[:10]
        assert report.top_reasons[outcome] == expected, (outcome, SEED)


def test_the_exposure_report_agrees_with_the_hold_and_decision_rows(db: tuple[AppContext, Engine]) -> None:
    ctx, engine = db
    generate(engine, random.Random(SEED))

    report = exposure_report(None, within_hours=12, reports=SqlReportQueries(engine), uow=ctx.uow())

    assert report.as_of == NOW
    hold_rows = table(engine, holds)
    assert any(h.settled_fen and h.status == "open" for h in hold_rows), "no partly settled open hold"
    by_account: Counter[int] = Counter()
    for h in hold_rows:  # the open remainder of a hold not past its expiry ...
        if h.status == "open" and h.expires_at > NOW:
            by_account[h.account_id] += h.amount_fen - h.settled_fen
    for part in table(engine, hold_settlements):  # ... and every settled part no balance includes yet
        if part.counting:
            by_account[part.account_id] += part.amount_fen
    assert {a.account.id: a.exposure for a in report.accounts} == {
        r.id: from_fen(by_account[r.id]) for r in table(engine, credit_accounts)
    }, SEED
    for a in report.accounts:  # and as the account view (the domain's own arithmetic) sees each account
        view = view_account(a.account.customer_code, a.account.sale_group_code, scope=None, uow=ctx.uow())
        assert view.exposure == a.exposure, (a.account.customer_code, a.account.sale_group_code, SEED)
    for a in report.accounts:
        snap = a.account.snapshot
        assert snap is not None and a.balance_usable
        assert a.available == snap.amount - a.exposure
    expiring = sorted(
        (h.expires_at, h.id, h.amount_fen - h.settled_fen)
        for h in hold_rows
        if h.status == "open" and NOW < h.expires_at <= NOW + timedelta(hours=12)
    )
    assert [(h.expires_at, h.hold_id, h.amount_fen) for h in report.expiring] == expiring
    assert report.expiring_count == len(expiring)
    assert report.expiring_amount == from_fen(sum(x[2] for x in expiring))
    deferred = [
        r
        for r in table(engine, decisions)
        if r.state == "deferred" and (r.deferral_expires_at is None or r.deferral_expires_at > NOW)
    ]
    buckets: Counter[int] = Counter()
    for r in deferred:
        age = (NOW - r.decided_at).total_seconds()
        buckets[max(i for i, edge in enumerate(AGE_EDGES_S) if age >= edge)] += 1
    assert [b.count for b in report.deferred_by_age] == [buckets[i] for i in range(len(AGE_EDGES_S))], SEED
    assert sum(b.count for b in report.deferred_by_age) == len(deferred)


def test_the_upstream_report_agrees_with_the_call_rows(db: tuple[AppContext, Engine]) -> None:
    ctx, engine = db
    generate(engine, random.Random(SEED))
    req = ReportRequest(date(2026, 11, 25), date(2026, 12, 1), "Asia/Shanghai")

    report = upstream_report(req, reports=SqlReportQueries(engine), clock=ctx.clock)

    t0, t1 = report.period.start, report.period.end
    calls = [c for c in table(engine, upstream_calls) if t0 <= c.called_at < t1]
    assert report.total.calls == len(calls) > 0, SEED
    assert report.total.succeeded == sum(1 for c in calls if c.error_code is None)
    assert str(report.total.success_rate) == rate(report.total.succeeded, len(calls))
    assert report.total.retries == sum(1 for c in calls if c.attempt > 1)
    assert str(report.total.retry_rate) == rate(report.total.retries, len(calls))
    errors = Counter(c.error_code for c in calls if c.error_code)
    assert report.total.errors == sorted(errors.items(), key=lambda e: (-e[1], e[0]))
    for operation, figures in [(None, report.total), *report.by_operation]:
        latencies = sorted(c.latency_ms for c in calls if operation is None or c.operation == operation)
        assert figures.p95_latency_ms == pytest.approx(latencies[math.ceil(0.95 * len(latencies)) - 1])


def test_a_limited_key_sees_only_its_customers_balance_calls(db: tuple[AppContext, Engine]) -> None:
    ctx, engine = db
    generate(engine, random.Random(SEED))
    req = ReportRequest(date(2026, 11, 20), date(2026, 12, 1), "UTC", customers=frozenset({"8800000002"}))

    report = upstream_report(req, reports=SqlReportQueries(engine), clock=ctx.clock)

    expected = [
        c
        for c in table(engine, upstream_calls)
        if c.customer_code == "8800000002" and c.called_at >= report.period.start
    ]
    assert report.total.calls == len(expected)


class LaggingReports(SqlReportQueries):
    """The same queries, on a database that says its data are complete only up to `moment` (a replica
    behind the primary; None: a replica that cannot tell yet)."""

    def __init__(self, engine: Engine, moment: datetime | None) -> None:
        super().__init__(engine)
        self.moment = moment

    def as_of(self) -> datetime | None:
        return self.moment


def test_a_report_never_claims_data_newer_than_its_database_has(db: tuple[AppContext, Engine]) -> None:
    ctx, engine = db
    generate(engine, random.Random(SEED))
    behind = NOW - timedelta(hours=3)

    exposure = exposure_report(None, within_hours=12, reports=LaggingReports(engine, behind), uow=ctx.uow())
    assert exposure.as_of == exposure.data_as_of == behind  # holds judged at the moment the data show
    at_that_moment = SqlReportQueries(engine, clock=FakeClock(behind))
    same = exposure_report(None, within_hours=12, reports=at_that_moment, uow=ctx.uow())
    assert (exposure.deferred_by_age, exposure.expiring) == (same.deferred_by_age, same.expiring)
    req = ReportRequest(None, None, "Asia/Shanghai", customers=None)
    assert decisions_report(req, reports=LaggingReports(engine, behind), clock=ctx.clock).data_as_of == behind
    assert upstream_report(req, reports=LaggingReports(engine, behind), clock=ctx.clock).data_as_of == behind
    ahead = LaggingReports(engine, NOW + timedelta(hours=1))  # the primary itself: its now, never later
    assert exposure_report(None, within_hours=12, reports=ahead, uow=ctx.uow()).as_of == NOW
    with pytest.raises(ReadReplicaNotReady):
        exposure_report(None, within_hours=12, reports=LaggingReports(engine, None), uow=ctx.uow())
