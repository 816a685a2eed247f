"""Stateful contract fuzzing (issue 20, "contract fuzzing at depth"): schemathesis' state machine decides
orders and follows the documented links from POST /v1/decisions to reading, settling and releasing them,
with an orders key, an admin key and a key limited to customer A. Every answer keeps the documented
contract (never a 5xx, a documented status and content type, a body matching its schema), and no answer to
the limited key ever carries customer B's data: every other order it sends names customer B, and each of
those is 404 with nothing of B's in it.

Every run starts from the same database (a snapshot taken before the first, restored after each):
hypothesis requires that the same draws meet the same answers, and what a run leaves behind (a settled
part, which counts until a later balance includes it; an Idempotency-Key's record) would otherwise
change a later run's answers to the same draws (hypothesis' FlakyStrategyDefinition).

Bounded by examples, not time: 30 state-machine runs of up to 4 steps per key by default;
CREDITCTL_RELIABILITY_LONG=1 makes it 300 of up to 8. Seeded (derandomised; CREDITCTL_TEST_SEED moves
the order ids' randomness only).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from sqlalchemy import Engine

from tests.api.conftest import CUSTOMER_A, CUSTOMER_B, order
from tests.api.test_openapi_contract import KEY_HEADERS, contract_checks
from tests.random_refs import random_order_id
from tests.sqlite_snapshot import Snapshot

pytestmark = pytest.mark.api

LONG = os.environ.get("CREDITCTL_RELIABILITY_LONG", "").lower() in ("1", "true", "yes")
RUNS, STEPS = (300, 8) if LONG else (30, 4)
ACCOUNTS = ((CUSTOMER_A, "GB20"), (CUSTOMER_B, "GA10"))


def b_identifiers(api: Any) -> list[str]:
    """What only someone who may see customer B would find in an answer: an order of B's, decided with
    the unrestricted key, its decision and hold ids, B's payer account name. (B's customer
    code is not among them: a 404 may repeat the code the caller sent, as it does for any unknown one.)"""
    body = order(random_order_id("b-only"), customer=CUSTOMER_B, group="GA10")
    decided = api.decide(body)
    assert decided.status_code == 201 and decided.json["hold"], decided.json
    account = api.account(CUSTOMER_B, "GA10", key="auditor").json
    return [
        body["order_id"],
        decided.json["decision_id"],
        decided.json["hold"]["id"],
        account["payer_account_name"],
    ]


@dataclass
class Findings:
    seen: Counter[str] = field(default_factory=Counter)  # "METHOD path status" -> how many
    leaks: list[str] = field(default_factory=list)
    b_answers: Counter[int] = field(default_factory=Counter)  # the limited key's orders naming B

    def record(self, case: Any, response: Any, secrets: list[str] | None) -> None:
        """Count the answer; with `secrets` (the limited key's run), look for them in it."""
        self.seen[f"{case.method} {case.path} {response.status_code}"] += 1
        if secrets is None:
            return
        shown = [s for s in secrets if s in response.text]
        if shown:
            self.leaks.append(f"{case.method} {case.path} {response.status_code}: {shown}")
        if isinstance(case.body, dict) and case.body.get("customer_code") == CUSTOMER_B:
            self.b_answers[response.status_code] += 1


def machine(
    app: Any, keys: dict[str, str], role: str, secrets: list[str], found: Findings, start: Snapshot
) -> Any:
    """The state machine of /v1/decisions and its links, called with `role`'s key."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app).include(path_regex=r"^/v1/decisions")
    schema.config.analysis.constants.enabled = False  # generate from the document only (reproducible)
    checks = contract_checks()
    headers = {"Authorization": f"Bearer {keys[role]}"}
    limited = role == "orders_a"

    class Decisions(schema.as_state_machine()):  # type: ignore[misc]
        """Fresh orders on accounts that exist (A's; for the limited key, every other one B's); the
        database is put back as it was at the end, so every run meets the same state."""

        def setup(self) -> None:
            super().setup()
            self.sent = 0

        def teardown(self) -> None:
            start.restore()
            super().teardown()

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": headers}

        def before_call(self, case: Any) -> None:
            for name in [h for h in case.headers or {} if h.lower() in KEY_HEADERS]:
                del case.headers[name]
            if case.path == "/v1/decisions" and case.method == "POST" and isinstance(case.body, dict):
                self.sent += 1
                to_b = limited and self.sent % 2 == 0
                customer, group = (CUSTOMER_B, "GA10") if to_b else (CUSTOMER_A, "GB20")
                order_id = random_order_id("fuzz-b" if to_b else "fuzz")
                case.body.update(order_id=order_id, customer_code=customer, sale_group_code=group)

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            found.record(case, response, secrets if limited else None)

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=checks, headers=headers)

    return Decisions


@pytest.mark.timeout(1200 if LONG else 120)
@pytest.mark.parametrize("role", ["orders", "admin", "orders_a"])
def test_stateful_runs_keep_the_contract_and_never_show_another_customer(
    app: Any, api: Any, keys: dict[str, str], role: str, sqlite_engine: Engine
) -> None:
    found = Findings()
    secrets = b_identifiers(api)
    before = {customer: api.account(customer, group, key="auditor").json for customer, group in ACCOUNTS}
    run_state_machine_as_test(
        machine(app, keys, role, secrets, found, Snapshot(sqlite_engine)),
        settings=settings(
            max_examples=RUNS,
            stateful_step_count=STEPS,
            phases=[Phase.generate],  # no shrinking: orders stay in the database between runs
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
    after = {customer: api.account(customer, group, key="auditor").json for customer, group in ACCOUNTS}
    assert after == before  # every run met, and left, the same state
    seen = found.seen
    assert not found.leaks, found.leaks
    assert not [k for k in seen if k.endswith((" 500", " 502", " 503", " 504"))], seen
    if role == "admin":  # admin may read decisions, not decide: every POST is refused
        posts = [k for k in seen if k.startswith("POST")]
        assert posts and all(k.endswith((" 403", " 415", " 422")) for k in posts), seen
    else:
        assert seen["POST /v1/decisions 201"] > 0, seen
        linked = ("GET /v1/decisions/{order_id} 200", "POST /v1/decisions/{order_id}/")
        assert any(k.startswith(linked) for k in seen), seen
    if role == "orders_a":
        assert found.b_answers and set(found.b_answers) <= {404, 422}, found.b_answers  # never decided
