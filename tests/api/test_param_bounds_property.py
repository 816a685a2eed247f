"""Every bound of every parameter is safe: set at its smallest and at its largest accepted value, on an
account and in a published rule set, the account still decides orders (never a 500), and no hold ends
before the least hold_ttl_s, by its expiry or by the sweeper, however the orders are drawn."""

from __future__ import annotations

import copy
import os
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from adapters.fake.clock import FakeClock
from creditctl.domain.money import MAX_AMOUNT
from creditctl.services.context import AppContext
from creditctl.services.expiry import sweep
from rules import KNOWN_PARAMS, FactType, ParamSpec
from rules.param_catalogue import MIN_HOLD_TTL_S
from tests.api.conftest import CUSTOMER_A, Api, order

pytestmark = pytest.mark.api

SEED = int(os.environ.get("CREDITCTL_TEST_SEED", "20261205"))
SPECS = list(KNOWN_PARAMS.values())
LEAST_HOLD = timedelta(seconds=MIN_HOLD_TTL_S)

amounts = st.one_of(
    st.sampled_from(["0.01", "1.00", "900.00", "999.99", "1000.00", "50000.00", "100000.00", "600000.00"]),
    st.decimals(min_value=Decimal("0.01"), max_value=MAX_AMOUNT, places=2).map(lambda d: format(d, "f")),
)
orders = st.lists(st.tuples(st.sampled_from(["GA10", "GB20"]), amounts), min_size=1, max_size=3)


def wire(spec: ParamSpec, value: Decimal) -> int | str:
    return int(value) if spec.type is FactType.INTEGER else format(value, "f")


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def decide_and_check(api: Api, context: AppContext, clock: FakeClock, drawn: list[tuple[str, str]]) -> None:
    """Decide the drawn orders, then let all but a second of the least hold_ttl_s pass: no 500 anywhere,
    every hold made lives at least that long and is still open."""
    held = []
    for group, amount in drawn:
        r = api.decide(order(amount=amount, group=group))
        assert r.status_code == 201, (r.status_code, r.get_data(as_text=True))
        hold = r.json["hold"]
        if hold is not None:
            assert when(hold["expires_at"]) - when(r.json["decided_at"]) >= LEAST_HOLD, r.json
            held.append(r.json["order_id"])
    clock.advance(MIN_HOLD_TTL_S - 1)
    sweep(uow=context.uow())
    for order_id in held:
        r = api.decision(order_id)
        assert (r.status_code, r.json["hold"]["status"]) == (200, "open"), r.json
    for group in ("GA10", "GB20"):
        for path in ("", "/credit-profile"):
            r = api.client.get(f"/v1/accounts/{CUSTOMER_A}/{group}{path}", headers=api.auth("admin"))
            assert r.status_code == 200, (path, r.get_data(as_text=True))
    r = api.client.get("/v1/reports/exposure", headers=api.auth("auditor"))
    assert r.status_code == 200, r.get_data(as_text=True)
    r = api.client.post("/v1/reviews/recheck", json={}, headers=api.auth("admin"))
    assert r.status_code < 500, r.get_data(as_text=True)


def decide_drawn_orders(api: Api, context: AppContext, clock: FakeClock) -> None:
    @seed(SEED)
    @settings(
        max_examples=4, deadline=None, database=None, suppress_health_check=list(HealthCheck), print_blob=True
    )
    @given(drawn=orders)
    def run(drawn: list[tuple[str, str]]) -> None:
        decide_and_check(api, context, clock, drawn)

    run()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("end", ["minimum", "maximum"])
@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_each_bound_on_an_account_and_in_a_published_rule_set_keeps_orders_decided_and_holds_held(
    api: Api, context: AppContext, clock: FakeClock, spec: ParamSpec, end: str
) -> None:
    value = wire(spec, getattr(spec, end))
    for group in ("GA10", "GB20"):
        assert api.decide(order(amount="1.00", group=group)).status_code == 201  # the accounts exist
        url = f"/v1/accounts/{CUSTOMER_A}/{group}/params"
        r = api.client.put(url, json={"params": {spec.name: value}}, headers=api.auth("admin"))
        assert r.status_code == 200, r.json
    decide_drawn_orders(api, context, clock)

    for group in ("GA10", "GB20"):
        url = f"/v1/accounts/{CUSTOMER_A}/{group}/params"
        assert api.client.put(url, json={"params": {}}, headers=api.auth("admin")).status_code == 200
    document = copy.deepcopy(api.client.get("/v1/rule-sets/1", headers=api.auth("admin")).json["document"])
    document["params"][spec.name] = value
    r = api.client.post(
        "/v1/rule-sets", json={"name": "bound", "document": document}, headers=api.auth("admin")
    )
    published = api.client.post(
        f"/v1/rule-sets/{r.json['id']}/publish", json={"reason": "bound"}, headers=api.auth("admin")
    )
    assert published.status_code == 200, published.json
    decide_drawn_orders(api, context, clock)
