"""Rule tests, like `opa test`: cases of facts (or an order on a hypothetical account) with the
outcome and reasons a rule set must give them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from creditctl.domain.account import PaymentProfile
from creditctl.domain.assessment import assess, effective_params
from creditctl.domain.decision import Order
from creditctl.services.simulate_order import HypotheticalAccount, hypothetical
from rules import FACTS, KNOWN_PARAMS, FactType, RuleSet
from rules.param_catalogue import param_problem
from rules.results import RuleTrace


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    passed: bool
    outcome: str
    reasons: list[str]
    trace: tuple[RuleTrace, ...]
    problem: str = ""


def run_case(rules: RuleSet, case: dict[str, Any], now: datetime) -> CaseResult:
    """Evaluate one case and compare with its `expect` (outcome, and reasons if given, in any order)."""
    name = str(case.get("name", "unnamed"))
    params = {k: Decimal(str(v)) for k, v in (case.get("params") or {}).items()}
    known = ((KNOWN_PARAMS[k], v) for k, v in params.items() if k in KNOWN_PARAMS)
    if bad := [problem for spec, value in known if (problem := param_problem(spec, value))]:
        return CaseResult(name, False, "", [], (), "; ".join(bad))  # the bounds hold in tests too
    if "facts" in case:
        evaluation = rules.evaluate(_facts(case["facts"]), {**rules.params, **params} or None)
        outcome, reasons = evaluation.outcome.value, [m.reason for m in evaluation.matches]
    else:
        account = hypothetical(_account(case.get("account") or {}, params), "hypothetical", now)
        spec = case.get("order") or {}
        order = Order(
            "test",
            "hypothetical",
            str(spec.get("sale_group", "SG")),
            Decimal(str(spec["amount"])),
            spec.get("channel"),
        )
        assessment = assess(order, account, rules, now)
        evaluation = rules.evaluate(assessment.facts, effective_params(rules, account))
        outcome, reasons = assessment.outcome.value, [r.reason for r in assessment.reasons]
    expect = case.get("expect") or {}
    problems = []
    if outcome != expect.get("outcome"):
        problems.append(f"outcome {outcome!r}, expected {expect.get('outcome')!r}")
    if "reasons" in expect and sorted(reasons) != sorted(expect["reasons"]):
        problems.append(f"reasons {reasons}, expected {expect['reasons']}")
    return CaseResult(name, not problems, outcome, reasons, evaluation.trace, "; ".join(problems))


def _facts(given: dict[str, Any]) -> dict[str, Any]:
    """Facts as JSON (money and ratios as decimal strings) typed by the catalogue; unknown ones kept."""
    out: dict[str, Any] = dict.fromkeys(FACTS)
    for name, value in given.items():
        spec = FACTS.get(name)
        if value is None or spec is None:
            out[name] = value
        elif spec.type in (FactType.MONEY, FactType.RATIO):
            out[name] = Decimal(str(value))
        elif spec.type is FactType.INTEGER:
            out[name] = int(value)
        else:
            out[name] = str(value)
    return out


def _account(spec: dict[str, Any], params: dict[str, Decimal]) -> HypotheticalAccount:
    payment = spec.get("payment") or {}
    balance = spec.get("balance")
    return HypotheticalAccount(
        balance=None if balance is None else Decimal(str(balance)),
        balance_age_s=int(spec.get("balance_age_s", 0)),
        exposure=Decimal(str(spec.get("exposure", "0.00"))),
        params=params,
        payment=PaymentProfile(
            max_overdue_days=int(payment.get("max_overdue_days", 0)),
            on_time_ratio=Decimal(str(payment.get("on_time_ratio", "1"))),
            overdue_amount=Decimal(str(payment.get("overdue_amount", "0.00"))),
        ),
        frozen=bool(spec.get("frozen", False)),
        age_days=int(spec.get("age_days", 365)),
    )
