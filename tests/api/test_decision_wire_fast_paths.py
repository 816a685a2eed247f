"""The decision's wire fast paths say exactly what the marshmallow schemas say.

DecisionRequestSchema.load takes plainly valid bodies by a shorter road and DecisionSchema.dump writes a
decision without marshmallow's walk (adapters/web/schemas/decisions.py); the schemas' own fields stay the
reference. Randomised: CREDITCTL_TEST_SEED replays a run (the seed is in every failure message).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError

from adapters.web.schemas.decisions import DecisionRequestSchema, DecisionSchema, fast_decision_request
from creditctl.domain.balance import BalanceSnapshot
from creditctl.domain.decision import Decision, DecisionState, Order, Reason
from creditctl.domain.hold import Hold, HoldStatus
from rules import Outcome

SEED = int(os.environ.get("CREDITCTL_TEST_SEED", "20261205"))
ROUNDS = 3000

_TEXT_PIECES = [
    "PO", "/", "-", "_", ".", "..", " ", "\t", "\n", "\x00", "\x7f", "\x85", "\u200b", "\u2028", "\ufeff",
    "é", "订单", "0", "9", "a", "Z", "%2F", "\U000e0001", "\\", '"', "x" * 40,
]  # fmt: skip
_AMOUNTS = [
    "0", "0.00", "0.01", "1", "1.5", "12.34", "12.345", "-1.00", "+1.00", " 1.00", "1.00 ", "1.00\n", "01.00",
    "1e3", "1,000.00", "", "NaN", "Infinity", "999999999999.99", "1000000000000", "1000000000000.00",
    "1000000000000.01", "\uff11\uff12.\uff13\uff14", ".5", "5.",
]  # fmt: skip
_NOT_TEXT: list[Any] = [None, 1, 1.5, Decimal("1.5"), True, [], {}, ["a"]]


def _text(rng: random.Random) -> Any:
    if rng.random() < 0.08:
        return rng.choice(_NOT_TEXT)
    return "".join(rng.choice(_TEXT_PIECES) for _ in range(rng.randint(0, 6)))


def _code(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.6:
        return rng.choice(["C", "8800", "GA10", "a", "Z9"]) + "".join(
            rng.choices("0123456789AZaz_.-", k=rng.randint(0, 8))
        )
    if roll < 0.7:
        return "C" + "1" * rng.randint(30, 34)  # around the 32-character limit
    return _text(rng)


def _body(rng: random.Random) -> Any:
    if rng.random() < 0.02:
        return rng.choice([None, [], "body", 1])
    body: dict[str, Any] = {
        "order_id": rng.choice([f"PO/{rng.randint(1, 99)}/{rng.randint(1, 9999)}", "x" * rng.randint(60, 66)])
        if rng.random() < 0.5
        else _text(rng),
        "customer_code": _code(rng),
        "sale_group_code": _code(rng),
        "amount": rng.choice(_AMOUNTS) if rng.random() < 0.9 else rng.choice(_NOT_TEXT),
    }
    if rng.random() < 0.3:
        body["channel"] = rng.choice([None, "web", "edi", "x" * 65, ""]) if rng.random() < 0.6 else _text(rng)
    if rng.random() < 0.1:
        body["metadata"] = rng.choice([None, {}, {"a": "b"}, {"a": {"nested": 1}}, []])
    if rng.random() < 0.05:
        body[rng.choice(["extra", "Amount", "order"])] = "x"
    for name in list(body):
        if rng.random() < 0.03:
            del body[name]
    return body


def test_the_fast_request_load_accepts_only_what_the_schema_accepts_and_reads_it_alike() -> None:
    rng = random.Random(SEED)
    schema = DecisionRequestSchema()
    taken = 0
    for i in range(ROUNDS):
        body = _body(rng)
        fast = fast_decision_request(body)
        try:
            reference = Schema.load(schema, body)  # marshmallow's own load, not the override
        except ValidationError as exc:
            assert fast is None, (
                f"seed {SEED}, body {i}: fast path took {body!r}, schema refused: {exc.messages}"
            )
            continue
        if fast is not None:
            taken += 1
            assert repr(fast) == repr(reference), (
                f"seed {SEED}, body {i}: {body!r}: {fast!r} != {reference!r}"
            )
        assert repr(schema.load(body)) == repr(reference), f"seed {SEED}, body {i}: {body!r}"
    assert taken > ROUNDS // 60, f"seed {SEED}: the fast path took only {taken} of {ROUNDS} bodies"


def test_a_plain_decision_body_takes_the_fast_path() -> None:
    body = {
        "order_id": "PO/2026/000123",
        "customer_code": "8800633175",
        "sale_group_code": "GA10",
        "amount": "1999.98",
    }
    assert fast_decision_request(body) == {
        **body,
        "amount": Decimal("1999.98"),
        "channel": None,
        "metadata": None,
    }
    assert fast_decision_request({**body, "channel": "web"}) is not None


def _decision(rng: random.Random) -> Decision:
    now = datetime(2026, 12, 5, 13, 0, tzinfo=UTC) + timedelta(microseconds=rng.randint(0, 10**9))
    amount = Decimal(rng.randint(1, 10**8)) / 100
    outcome = rng.choice(list(Outcome))
    order = Order(
        order_id=rng.choice(["PO/1", "订单-7", "a" * 64]),
        customer_code="8800633175",
        sale_group_code="GA10",
        amount=amount,
        channel=rng.choice([None, "web", "渠道"]),
        metadata=rng.choice([None, {"k": "v"}]),
    )
    hold = None
    if rng.random() < 0.6:
        hold = Hold(
            id="h-1", account_id=1, order_id=order.order_id, decision_id="d-1", amount=amount,
            status=HoldStatus.OPEN, created_at=now, expires_at=now + timedelta(days=rng.randint(1, 30)),
        )  # fmt: skip
        for part in range(rng.randint(0, 3)):
            if hold.remaining > Decimal("0.01"):
                hold.settle(
                    Decimal("0.01") if rng.random() < 0.5 else None,
                    rng.choice([None, f"DN-{part}"]),
                    part_id=f"s-{part}",
                    now=now + timedelta(hours=part + 1),
                )
        if hold.is_open and rng.random() < 0.4:
            hold.end_remainder(rng.choice([HoldStatus.RELEASED, HoldStatus.EXPIRED]), now + timedelta(days=1))
    reasons = tuple(
        Reason(rule=f"rule_{k}", reason=rng.choice(["OVER_LIMIT", "BALANCE_STALE"]), message=f"message {k} ¥")
        for k in range(rng.randint(0, 3))
    )
    maybe = lambda value: value if rng.random() < 0.7 else None  # noqa: E731
    return Decision(
        id="d-1",
        order=order,
        account_id=1,
        fingerprint="f" * 64,
        outcome=outcome,
        reasons=reasons,
        actions=(),
        balance=maybe(BalanceSnapshot(amount=Decimal("100000000.00"), fetched_at=now, source="fake")),
        exposure=Decimal(rng.randint(0, 10**9)) / 100,
        available=maybe(Decimal(rng.randint(-(10**9), 10**9)) / 100),
        credit_limit=Decimal("5000000.00"),
        credit_grade=rng.choice(["A", "B", "D"]),
        shortfall=maybe(Decimal("12.30")),
        rule_set_id=rng.randint(1, 9),
        rule_set_version=rng.randint(1, 9),
        decided_at=now,
        state=rng.choice(list(DecisionState)),
        hold=hold,
        deferral_expires_at=maybe(now + timedelta(hours=2)),
        rechecks=rng.randint(0, 3),
        rechecked_at=maybe(now),
        reviews=rng.choice([[], [{"action": "release", "by": "ops", "at": now.isoformat()}]]),
    )


def test_the_fast_decision_dump_writes_what_the_schema_writes() -> None:
    rng = random.Random(SEED)
    schema = DecisionSchema()
    for i in range(ROUNDS // 10):
        decision = _decision(rng)
        reference = json.dumps(Schema.dump(schema, decision), ensure_ascii=False)  # order counts too
        assert json.dumps(schema.dump(decision), ensure_ascii=False) == reference, (
            f"seed {SEED}, decision {i}"
        )
        many = [decision, replace(decision, hold=None)]
        assert json.dumps(schema.dump(many, many=True)) == json.dumps(Schema.dump(schema, many, many=True))
