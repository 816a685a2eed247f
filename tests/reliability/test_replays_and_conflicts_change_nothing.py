"""Reliability 2: one order id, many requests (through HTTP, on PostgreSQL, a thread and connection each).

The same body 50 times at once and 50 times in sequence make one decision, one hold, one audit event and
one outbox row; every sequential replay answers 200 with the very body of the first answer; another
amount under the same id is a 409 problem that changes nothing; a refused (invalid) first attempt is not
remembered, so the corrected request is decided. Both checkers after.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Text, cast, func, select

from adapters.sql.tables import audit_events, credit_accounts, decisions, holds, outbox
from tests.adapters.concurrency import all_at_once
from tests.random_refs import random_order_id
from tests.reliability.checkers import assert_checkers
from tests.reliability.instance import Instance, start

pytestmark = [pytest.mark.adapters, pytest.mark.postgres]

CUSTOMER, GROUP = "8800000001", "GA10"
AT_ONCE, IN_SEQUENCE = 50, 50


@pytest.fixture
def instance(pg: Engine, tmp_path: Path) -> Instance:
    return start(pg, tmp_path, {(CUSTOMER, GROUP): Decimal("1000.00")})


def body(order_id: str, amount: str = "100.00") -> dict[str, str]:
    return {"order_id": order_id, "customer_code": CUSTOMER, "sale_group_code": GROUP, "amount": amount}


def footprint(engine: Engine, order_id: str) -> dict[str, Any]:
    """Everything a decision may have written, counted, with the account's exposure."""
    where = {
        "decisions": decisions.c.order_id == order_id,
        "holds": holds.c.order_id == order_id,
        "audit events": audit_events.c.order_id == order_id,
        "outbox rows": cast(outbox.c.payload, Text).contains(order_id),
    }
    with engine.connect() as conn:
        out: dict[str, Any] = {
            name: conn.execute(select(func.count()).where(w)).scalar_one() for name, w in where.items()
        }
        out["exposure_fen"] = conn.execute(
            select(credit_accounts.c.exposure_fen).where(credit_accounts.c.customer_code == CUSTOMER)
        ).scalar_one()
    return out


def test_fifty_at_once_and_fifty_in_sequence_make_one_decision_and_answer_the_same_body(
    instance: Instance,
) -> None:
    order_id = random_order_id("replay")
    headers = {"Authorization": f"Bearer {instance.key()}"}
    results = all_at_once(
        AT_ONCE, lambda _: instance.client().post("/v1/decisions", json=body(order_id), headers=headers)
    )
    errors = [r.error for r in results if r.error is not None]
    assert not errors, f"{len(errors)} requests failed, first: {errors[0]!r}"
    statuses = sorted(r.value.status_code for r in results)
    assert statuses == [200] * (AT_ONCE - 1) + [201], statuses
    first = next(r.value.json for r in results if r.value.status_code == 201)
    assert first["outcome"] == "approve"
    instance.books.approval(order_id, (CUSTOMER, GROUP), Decimal(first["amount"]))
    assert {r.value.json["decision_id"] for r in results} == {first["decision_id"]}

    client = instance.client()
    for _ in range(IN_SEQUENCE):
        again = client.post("/v1/decisions", json=body(order_id), headers=headers)
        assert again.status_code == 200 and again.json == first
    left = footprint(instance.engine, order_id)
    assert {k: left[k] for k in ("decisions", "holds", "audit events", "outbox rows")} == {
        "decisions": 1, "holds": 1, "audit events": 1, "outbox rows": 1,
    }  # fmt: skip
    assert left["exposure_fen"] == 10000
    assert_checkers(instance.engine, instance.books)


def test_another_amount_under_the_same_id_is_a_conflict_that_changes_nothing(instance: Instance) -> None:
    order_id = random_order_id("conflict")
    headers = {"Authorization": f"Bearer {instance.key()}"}
    client = instance.client()
    first = client.post("/v1/decisions", json=body(order_id), headers=headers)
    assert first.status_code == 201, first.json
    instance.books.approval(order_id, (CUSTOMER, GROUP), Decimal("100.00"))
    before = footprint(instance.engine, order_id)
    for amount in ("100.01", "99.99", "5000.00"):
        conflict = client.post("/v1/decisions", json=body(order_id, amount), headers=headers)
        assert conflict.status_code == 409, conflict.json
        assert conflict.headers["Content-Type"].startswith("application/problem+json")
    assert footprint(instance.engine, order_id) == before
    replay = client.post("/v1/decisions", json=body(order_id), headers=headers)
    assert replay.status_code == 200 and replay.json == first.json
    assert_checkers(instance.engine, instance.books)


def test_a_refused_first_attempt_is_not_remembered_and_the_corrected_request_is_decided(
    instance: Instance,
) -> None:
    order_id = random_order_id("refused")
    headers = {"Authorization": f"Bearer {instance.key()}"}
    client = instance.client()
    empty = footprint(instance.engine, order_id)
    for bad in ("-100.00", "0.00", "100.001", "abc"):
        refused = client.post("/v1/decisions", json=body(order_id, bad), headers=headers)
        assert refused.status_code == 422, (bad, refused.json)
        assert refused.headers["Content-Type"].startswith("application/problem+json")
        assert footprint(instance.engine, order_id) == empty
    corrected = client.post("/v1/decisions", json=body(order_id), headers=headers)
    assert corrected.status_code == 201 and corrected.json["outcome"] == "approve", corrected.json
    instance.books.approval(order_id, (CUSTOMER, GROUP), Decimal("100.00"))
    assert footprint(instance.engine, order_id)["holds"] == 1
    assert_checkers(instance.engine, instance.books)
