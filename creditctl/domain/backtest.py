"""Backtests: stored decisions replayed under another rule set, and what would have changed.

A replay takes the facts recorded at decision time, with two exceptions that are not facts about
the world but consequences of parameters: `available` (balance - exposure - safety_margin) and
`credit.limit` (base_credit_limit x the grade's multiplier) are recomputed from the recorded
balance, exposure and grade with the candidate's parameters, so a changed margin or credit line
shows. The parameters are the candidate rule set's own with each account's *current* overrides
(overrides are not recorded per decision). The guards of a live decision apply as they do there
(assessment.assess): an already frozen account is blocked rather than frozen again, nothing is
approved without a balance (fail closed), nor beyond available + credit limit (the funds floor).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from creditctl.domain.assessment import FAIL_CLOSED, FUNDS_FLOOR, rule_params
from creditctl.domain.credit import credit_limit
from creditctl.domain.decision import Reason
from rules import FACTS, FactType, Outcome, RuleSet

PARAMS_SOURCE = "candidate rule set parameters with each account's current overrides"
OUTCOMES = tuple(outcome.value for outcome in Outcome)
GRADES = ("A", "B", "C", "D")
# Facts stored as decimal strings (ExactJson writes a Decimal as a string) and read as Decimal.
DECIMAL_FACTS = tuple(name for name, spec in FACTS.items() if spec.type in (FactType.MONEY, FactType.RATIO))


class RunStatus:
    """A run is queued (waiting for a worker), running (a worker holds its lease), then ends: succeeded
    or failed. An ended run never changes again."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ENDED = (SUCCEEDED, FAILED)


# The error of a run whose worker stopped before it ended (its lease ran out, or it was shut down).
# Such a run is not tried again: the period and rule set are kept with it, and asking again is one call.
WORKER_STOPPED = "worker stopped"


@dataclass(frozen=True, slots=True)
class ChangedOrder:
    """One order whose outcome the candidate rule set changes; `reasons` are those of `after`."""

    seq: int
    order_id: str
    customer_code: str
    sale_group_code: str
    amount: Decimal
    before: str
    after: str
    reasons: tuple[Reason, ...]


@dataclass(slots=True)
class Tally:
    """Counts by outcome and money approved (integer fen while counting: no Decimal per row)."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    approved_fen: int = 0


@dataclass(frozen=True, slots=True)
class Progress:
    """Decisions replayed so far, of `total`: the decisions of the period when the run started (None
    until then). When the run succeeds, total is what it replayed."""

    replayed: int
    total: int | None


@dataclass(slots=True)
class BacktestRun:
    """A backtest's identity, period and summary; `changed` counts the orders kept as ChangedOrders.

    `document` is the rule set document replayed (kept with the run, so that any worker can run it);
    `lease_holder` and `lease_until` say which worker runs it and until when that worker's claim holds
    without news from it (times are the database's)."""

    id: str
    rule_set_name: str
    start: datetime
    end: datetime
    requested_by: str
    created_at: datetime
    status: str = RunStatus.QUEUED
    finished_at: datetime | None = None
    document: Any = None
    started_at: datetime | None = None
    total: int | None = None
    lease_holder: str | None = None
    lease_until: datetime | None = None
    decisions: int = 0
    changed: int = 0
    missing_facts: int = 0
    missing_by_fact: dict[str, int] = field(default_factory=dict)
    before: Tally = field(default_factory=Tally)
    after: Tally = field(default_factory=Tally)
    error: str | None = None
    params_source: str = PARAMS_SOURCE

    @property
    def ended(self) -> bool:
        return self.status in RunStatus.ENDED

    @property
    def progress(self) -> Progress:
        return Progress(self.decisions, self.total)

    def summary(self) -> dict[str, Any]:
        """The JSON-able summary stored with the run (money as decimal strings)."""
        return {
            "decisions": self.decisions,
            "changed": self.changed,
            "missing_facts": self.missing_facts,
            "missing_by_fact": dict(self.missing_by_fact),
            "before": {"counts": dict(self.before.counts), "approved_fen": self.before.approved_fen},
            "after": {"counts": dict(self.after.counts), "approved_fen": self.after.approved_fen},
            "error": self.error,
            "params_source": self.params_source,
        }

    def load_summary(self, summary: Mapping[str, Any]) -> None:
        """Fill the summary fields from what `summary()` returned."""
        self.decisions = summary["decisions"]
        self.changed = summary["changed"]
        self.missing_facts = summary["missing_facts"]
        self.missing_by_fact = dict(summary["missing_by_fact"])
        self.before = Tally(dict(summary["before"]["counts"]), summary["before"]["approved_fen"])
        self.after = Tally(dict(summary["after"]["counts"]), summary["after"]["approved_fen"])
        self.error = summary.get("error")
        self.params_source = summary.get("params_source", PARAMS_SOURCE)


class AccountReplay:
    """The candidate's parameters for one account, and the facts that derive from them."""

    __slots__ = ("limits", "margin", "params")

    def __init__(self, rule_set: RuleSet, overrides: Mapping[str, str] | None) -> None:
        merged = rule_params(rule_set)
        if overrides:
            merged.update({name: Decimal(value) for name, value in overrides.items()})
        # None: the rule set's own (its evaluate() takes a faster path for those).
        self.params: dict[str, Decimal] | None = merged if overrides else None
        self.margin = Decimal(merged.get("safety_margin", 0))
        self.limits = {grade: credit_limit(merged, grade) for grade in GRADES}


def decode_facts(facts: dict[str, Any], account: AccountReplay) -> dict[str, Any]:
    """Recorded facts (as stored) to evaluable ones, with available and credit.limit recomputed."""
    for name in DECIMAL_FACTS:
        value = facts.get(name)
        if value.__class__ is str:
            facts[name] = Decimal(value)
    balance = facts.get("balance.amount")
    if balance is not None:
        facts["available"] = balance - facts["exposure"] - account.margin
    grade = facts.get("credit.grade")
    if grade in account.limits:
        facts["credit.limit"] = account.limits[grade]
    return facts


def guard(outcome: Outcome, facts: Mapping[str, Any], amount: Decimal) -> tuple[Outcome, Reason | None]:
    """The live decision's guards after the rules (assessment.assess), and the reason one added."""
    if outcome is Outcome.FREEZE and facts.get("account.status") == "frozen":
        return Outcome.BLOCK, None
    available = facts.get("available")
    if facts.get("balance.amount") is None or available is None:
        return (Outcome.DEFER, FAIL_CLOSED) if outcome is Outcome.APPROVE else (outcome, None)
    if outcome is Outcome.APPROVE and amount > available + (facts.get("credit.limit") or 0):
        return Outcome.BLOCK, FUNDS_FLOOR
    return outcome, None


def outcome_before(outcome: str, state: str) -> str:
    """The stored decision's outcome as the rules gave it: an expired deferral was a deferral
    (the block it ends in is time passing, not policy)."""
    return Outcome.DEFER.value if state == "expired" else outcome
