"""The decision call end to end through Flask's client."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.api


def post(client, key, body, **kw):
    return client.post("/v1/decisions", json=body, headers={"Authorization": f"Bearer {key}"}, **kw)


def order(order_id="PO-1", amount="100.00", customer="8800000001", group="GA10"):
    return {"order_id": order_id, "customer_code": customer, "sale_group_code": group, "amount": amount}


class TestDecide:
    def test_approves_and_reserves_what_fits(self, client, keys):
        r = post(client, keys["orders"], order(amount="100.00", group="GB20"))
        assert r.status_code == 201, r.json
        assert r.json["outcome"] == "approve"
        assert r.json["hold"]["amount"] == "100.00"
        assert r.json["hold"]["status"] == "open"

    def test_replay_returns_the_original_decision(self, client, keys):
        first = post(client, keys["orders"], order(group="GB20"))
        again = post(client, keys["orders"], order(group="GB20"))
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json == first.json

    def test_same_order_id_with_another_body_is_a_conflict(self, client, keys):
        post(client, keys["orders"], order(group="GB20"))
        r = post(client, keys["orders"], order(group="GB20", amount="101.00"))
        assert r.status_code == 409
        assert r.mimetype == "application/problem+json"
        assert "order_id" in r.json["errors"]
