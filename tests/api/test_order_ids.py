"""Order ids as order systems write them: any id POST /v1/decisions accepts works on every route, and ids
are scoped per customer, so two distributors' order systems never collide and never see each other."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from creditctl.services.api_keys import create_api_key
from creditctl.services.context import AppContext
from tests.api.conftest import CUSTOMER_A, CUSTOMER_B, Api, assert_problem, order
from tests.random_refs import random_order_id

pytestmark = pytest.mark.api


@pytest.fixture
def limited(api: Api, context: AppContext) -> dict[str, str]:
    """Orders keys limited to B alone, and to both A and B."""
    for name, customers in (("orders_b", [CUSTOMER_B]), ("orders_ab", [CUSTOMER_A, CUSTOMER_B])):
        api.keys[name] = create_api_key(
            name=name, role="orders", customers=customers, uow=context.uow(), clock=context.clock
        ).secret
    return api.keys


def on_a(order_id: str, amount: str = "100.00") -> dict[str, Any]:
    return order(order_id, amount=amount, group="GB20")


def on_b(order_id: str, amount: str = "100.00") -> dict[str, Any]:
    return order(order_id, amount=amount, customer=CUSTOMER_B, group="GA10")


class TestIdsWithSlashesAndOtherCharacters:
    @pytest.mark.parametrize(
        "suffix", ["PO/2026/0001", "PO 2026 #7", "PO:2026?x=1&y=2", "订单/2026/壹", "a%2Fb", "x/settle"]
    )
    @pytest.mark.parametrize("encode", [False, True])
    def test_every_route_works_for_an_accepted_id(self, api: Api, suffix: str, encode: bool) -> None:
        oid = f"{random_order_id('id')}-{suffix}"
        created = api.decide(on_a(oid))
        assert created.status_code == 201, created.json
        path = quote(oid, safe="" if encode else "/")  # clients send "/" as is or as %2F
        read = api.decision(path)
        assert (read.status_code, read.json["order_id"]) == (200, oid)
        settled = api.act(path, "settle")
        assert (settled.status_code, settled.json["hold"]["status"]) == (200, "settled")
        assert api.act(path, "settle").status_code == 200  # a retry
        assert_problem(api.act(path, "release"), 409, "order_id")
        assert api.act(path, "recheck").json["order_id"] == oid

    @pytest.mark.parametrize("bad", ["/PO-1", "PO-1/", "PO//1", "PO/./1", "PO/../1", ".", ".."])
    def test_ids_no_url_can_carry_whole_are_refused_at_the_door(self, api: Api, db_state, bad: str) -> None:
        before = db_state()
        assert_problem(api.decide(on_a(bad)), 422, "order_id")
        assert db_state() == before


class TestIdsArePerCustomer:
    def test_two_customers_may_use_the_same_id_and_neither_sees_the_other(
        self, api: Api, limited: dict[str, str]
    ) -> None:
        oid = random_order_id("shared")
        a = api.decide(on_a(oid), key="orders_a")
        b = api.decide(on_b(oid, amount="7.00"), key="orders_b")
        assert (a.status_code, b.status_code) == (201, 201)  # B learns nothing of A's id: no 409
        assert a.json["decision_id"] != b.json["decision_id"]
        assert api.decision(oid, key="orders_a").json["customer_code"] == CUSTOMER_A
        assert api.decision(oid, key="orders_b").json["amount"] == "7.00"
        assert api.act(oid, "release", key="orders_b").json["hold"]["status"] == "released"
        assert api.decision(oid, key="orders_a").json["hold"]["status"] == "open"  # A's order untouched

    def test_a_replay_and_a_conflict_stay_within_one_customer(
        self, api: Api, limited: dict[str, str]
    ) -> None:
        oid = random_order_id("replay")
        assert api.decide(on_a(oid), key="orders_a").status_code == 201
        assert api.decide(on_a(oid), key="orders_a").status_code == 200
        assert_problem(api.decide(on_a(oid, amount="5.00"), key="orders_a"), 409, "order_id")
        assert api.decide(on_b(oid), key="orders_b").status_code == 201

    @pytest.mark.parametrize("action", [None, "settle", "release", "recheck"])
    def test_an_id_two_visible_customers_used_asks_for_the_customer(
        self, api: Api, limited: dict[str, str], db_state, action: str | None
    ) -> None:
        oid = random_order_id("ambiguous")
        api.decide(on_a(oid), key="orders_a")
        api.decide(on_b(oid), key="orders_b")
        before = db_state()
        for key in ("orders", "orders_ab"):
            r = api.decision(oid, key=key) if action is None else api.act(oid, action, key=key)
            body = assert_problem(r, 409, "customer_code")
            assert "customer_code" in body["detail"]
        assert db_state() == before
        query = f"?customer_code={CUSTOMER_B}"
        headers = api.auth("orders_ab")
        if action is None:
            r = api.client.get(f"/v1/decisions/{oid}{query}", headers=headers)
        else:
            r = api.client.post(f"/v1/decisions/{oid}/{action}{query}", headers=headers)
        assert (r.status_code, r.json["customer_code"]) == (200, CUSTOMER_B)

    def test_naming_a_customer_the_key_may_not_see_is_404(self, api: Api, limited: dict[str, str]) -> None:
        oid = random_order_id("hidden")
        api.decide(on_b(oid), key="orders_b")
        r = api.decision(f"{oid}?customer_code={CUSTOMER_B}", key="orders_a")
        assert_problem(r, 404, "order_id")


class TestEndingBodies:
    @pytest.mark.parametrize("action", ["settle", "release", "recheck"])
    def test_unknown_body_fields_are_refused_and_change_nothing(
        self, api: Api, db_state, action: str
    ) -> None:
        oid = random_order_id("body")
        api.decide(on_a(oid))
        before = db_state()
        r = api.client.post(
            f"/v1/decisions/{oid}/{action}",
            json={"amount": "1.00", "status": "settled"},
            headers=api.auth("orders"),
        )
        assert_problem(r, 422, "status")
        assert db_state() == before
