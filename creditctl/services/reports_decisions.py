"""The decisions report: per day by outcome, approval rate, money by outcome, top reasons, per account."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from creditctl.domain.money import fmt, from_fen
from creditctl.domain.report_period import ReportPeriod, report_period
from creditctl.ports.clock import Clock
from creditctl.ports.reports import Customers, ReportQueries

OUTCOMES = ("approve", "defer", "block", "freeze")
REASON_OUTCOMES = ("block", "defer", "freeze")
RATE = Decimal("0.0001")
TOP_REASONS = 10


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """A period (dates or aware times; None: the defaults) and the customers the caller may see."""

    start: date | datetime | None = None
    end: date | datetime | None = None
    tz: str | None = None
    customers: Customers = None


def rate(part: int, whole: int) -> Decimal | None:
    """part / whole to four places (half-even); None when there is nothing to divide."""
    return (Decimal(part) / Decimal(whole)).quantize(RATE, rounding=ROUND_HALF_EVEN) if whole else None


@dataclass
class Tally:
    """Decisions and money (fen) per outcome."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    fen: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))

    def add(self, outcome: str, count: int, fen: int) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + count
        self.fen[outcome] = self.fen.get(outcome, 0) + fen

    @property
    def decisions(self) -> int:
        return sum(self.counts.values())

    @property
    def approval_rate(self) -> Decimal | None:
        return rate(self.counts.get("approve", 0), self.decisions)

    def amount(self, outcome: str) -> Decimal:
        return from_fen(self.fen.get(outcome, 0))


@dataclass(frozen=True)
class DecisionsReport:
    period: ReportPeriod
    total: Tally
    by_day: list[tuple[date, Tally]]
    top_reasons: dict[str, list[tuple[str, int]]]
    by_account: list[tuple[str, str, Tally]]
    by_customer: list[tuple[str, Tally]]
    by_sale_group: list[tuple[str, Tally]]
    data_as_of: datetime | None = None  # the figures hold every decision committed up to this moment

    @property
    def money(self) -> dict[str, Decimal]:
        """Approved, deferred, and blocked (block and freeze: a freeze blocks its order)."""
        t = self.total
        return {
            "approved": t.amount("approve"),
            "deferred": t.amount("defer"),
            "blocked": from_fen(t.fen["block"] + t.fen["freeze"]),
        }


def decisions_report(req: ReportRequest, *, reports: ReportQueries, clock: Clock) -> DecisionsReport:
    """Aggregate the period's stored decisions (by decided_at; each with its current outcome)."""
    period = report_period(req.start, req.end, tz=req.tz, now=clock.now())
    data_as_of = reports.as_of()  # before the figures: they are at least this fresh
    days = {d: Tally() for d in period.days()}
    for row in reports.decisions_by_day(period.segments(), req.customers):
        days.setdefault(row.day, Tally()).add(row.outcome, row.count, row.amount_fen)
    total, accounts = Tally(), {}
    customers: dict[str, Tally] = {}
    groups: dict[str, Tally] = {}
    for a in reports.decisions_by_account(period.start, period.end, req.customers):
        for tally in (
            total,
            accounts.setdefault((a.customer_code, a.sale_group_code), Tally()),
            customers.setdefault(a.customer_code, Tally()),
            groups.setdefault(a.sale_group_code, Tally()),
        ):
            tally.add(a.outcome, a.count, a.amount_fen)
    reasons: dict[str, list[tuple[str, int]]] = {o: [] for o in REASON_OUTCOMES}
    for r in reports.reasons(period.start, period.end, REASON_OUTCOMES, req.customers):
        reasons.setdefault(r.outcome, []).append((r.reason, r.decisions))
    return DecisionsReport(
        period=period,
        total=total,
        by_day=sorted(days.items()),
        top_reasons={o: sorted(rs, key=lambda x: (-x[1], x[0]))[:TOP_REASONS] for o, rs in reasons.items()},
        by_account=[(c, g, t) for (c, g), t in sorted(accounts.items())],
        by_customer=sorted(customers.items()),
        by_sale_group=sorted(groups.items()),
        data_as_of=data_as_of,
    )


DECISIONS_CSV_HEADER = (
    "section",
    "day",
    "customer_code",
    "sale_group_code",
    "outcome",
    "reason",
    "decisions",
    "amount",
    "approval_rate",
)


def _tally_rows(
    section: str, keys: tuple[str, str, str], tally: Tally, *, zeros: bool
) -> Iterator[list[str]]:
    day, customer, group = keys
    for outcome in OUTCOMES:
        if zeros or tally.counts[outcome]:
            amount = fmt(tally.amount(outcome)) or ""
            yield [section, day, customer, group, outcome, "", str(tally.counts[outcome]), amount, ""]
    all_rate = tally.approval_rate
    all_fen = from_fen(sum(tally.fen.values()))
    yield [
        section,
        day,
        customer,
        group,
        "all",
        "",
        str(tally.decisions),
        fmt(all_fen) or "",
        _text(all_rate),
    ]


def decisions_csv_rows(report: DecisionsReport) -> Iterator[list[str]]:
    """One line per figure: totals, days, reasons, accounts, customers, sales groups."""
    yield from _tally_rows("total", ("", "", ""), report.total, zeros=True)
    for name, amount in report.money.items():
        yield ["money", "", "", "", name, "", "", fmt(amount) or "", ""]
    for day, tally in report.by_day:
        yield from _tally_rows("day", (day.isoformat(), "", ""), tally, zeros=True)
    for outcome, reasons in report.top_reasons.items():
        for reason, n in reasons:
            yield ["reason", "", "", "", outcome, reason, str(n), "", ""]
    for customer, group, tally in report.by_account:
        yield from _tally_rows("account", ("", customer, group), tally, zeros=False)
    for customer, tally in report.by_customer:
        yield from _tally_rows("customer", ("", customer, ""), tally, zeros=False)
    for group, tally in report.by_sale_group:
        yield from _tally_rows("sale_group", ("", "", group), tally, zeros=False)


def _text(value: object) -> str:
    return "" if value is None else str(value)
