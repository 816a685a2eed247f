"""Partial settlement and the holds list through HTTP: parts under settlement ids, retries applied once,
409 naming what is left, release after parts, each hold's life with times, filters and cursor pages."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.api.conftest import CUSTOMER_A, CUSTOMER_B, Api, assert_problem, order

pytestmark = pytest.mark.api


def settle(
    api: Api, oid: str, body: Any = None, *, headers: dict[str, str] | None = None, key: str = "orders"
):  # type: ignore[no-untyped-def]
    return api.client.post(f"/v1/decisions/{oid}/settle", json=body, headers=api.auth(key) | (headers or {}))


def holds(api: Api, query: str = "", customer: str = CUSTOMER_A, key: str = "auditor"):  # type: ignore[no-untyped-def]
    return api.client.get(f"/v1/accounts/{customer}/GB20/holds{query}", headers=api.auth(key))


class TestSettleInParts:
    def test_a_part_settles_and_keeps_the_rest_held(self, api: Api) -> None:
        oid = api.decide(order(amount="300.00")).json["order_id"]
        r = settle(api, oid, {"amount": "100.00", "settlement_id": "DN-1"})
        assert r.status_code == 200, r.json
        hold = r.json["hold"]
        assert (hold["status"], hold["amount"], hold["settled_amount"], hold["remaining"]) == (
            "open",
            "300.00",
            "100.00",
            "200.00",
        )
        assert [(s["settlement_id"], s["amount"], s["counting"]) for s in hold["settlements"]] == [
            ("DN-1", "100.00", True)
        ]
        assert [e["type"] for e in hold["events"]] == ["held", "settled"]
        assert api.exposure(CUSTOMER_A, "GB20") == "300.00"
        shown = api.account(CUSTOMER_A, "GB20").json
        assert [h["remaining"] for h in shown["open_holds"]] == ["200.00"]
        assert [h["id"] for h in shown["settled_holds_counting"]] == [hold["id"]]

    def test_a_retried_part_is_applied_once(self, api: Api, db_state: Any) -> None:
        oid = api.decide(order(amount="300.00")).json["order_id"]
        first = settle(api, oid, {"amount": "100.00", "settlement_id": "DN-1"})
        before = db_state()
        again = settle(api, oid, {"amount": "100.00", "settlement_id": "DN-1"})
        assert (again.status_code, again.json) == (200, first.json)
        assert db_state() == before

    def test_the_idempotency_key_header_is_the_settlement_id(self, api: Api) -> None:
        oid = api.decide(order(amount="300.00")).json["order_id"]
        key = {"Idempotency-Key": "DN-7"}
        first = settle(api, oid, {"amount": "100.00"}, headers=key)
        again = settle(api, oid, {"amount": "100.00"}, headers=key)
        assert (again.status_code, again.json) == (200, first.json)
        assert first.json["hold"]["settlements"][0]["settlement_id"] == "DN-7"
        assert_problem(
            settle(api, oid, {"amount": "1.00", "settlement_id": "DN-8"}, headers=key), 422, "settlement_id"
        )

    def test_more_than_is_left_is_409_naming_the_remainder(self, api: Api, db_state: Any) -> None:
        oid = api.decide(order(amount="300.00")).json["order_id"]
        settle(api, oid, {"amount": "100.00", "settlement_id": "DN-1"})
        before = db_state()
        body = assert_problem(
            settle(api, oid, {"amount": "200.01", "settlement_id": "DN-2"}), 409, "remaining"
        )
        assert body["errors"]["remaining"] == ["200.00"]
        assert "200.00 is left" in body["detail"]
        assert db_state() == before

    def test_a_settlement_id_with_another_amount_is_409(self, api: Api) -> None:
        oid = api.decide(order(amount="300.00")).json["order_id"]
        settle(api, oid, {"amount": "100.00", "settlement_id": "DN-1"})
        assert_problem(settle(api, oid, {"amount": "150.00", "settlement_id": "DN-1"}), 409, "settlement_id")

    def test_a_part_without_a_settlement_id_is_422(self, api: Api) -> None:
        oid = api.decide(order(amount="300.00")).json["order_id"]
        assert_problem(settle(api, oid, {"amount": "100.00"}), 422, "settlement_id")

    def test_bad_amounts_are_422(self, api: Api) -> None:
        oid = api.decide(order(amount="300.00")).json["order_id"]
        for bad in ("0.00", "-1.00", "1.005", 10):
            assert_problem(settle(api, oid, {"amount": bad, "settlement_id": "x"}), 422, "amount")

    def test_release_after_parts_ends_the_remainder_and_parts_keep_counting(self, api: Api) -> None:
        oid = api.decide(order(amount="300.00")).json["order_id"]
        settle(api, oid, {"amount": "100.00", "settlement_id": "DN-1"})
        r = api.act(oid, "release")
        assert r.status_code == 200
        hold = r.json["hold"]
        assert (hold["status"], hold["settled_amount"], hold["remaining"], hold["counting"]) == (
            "released",
            "100.00",
            "0.00",
            True,
        )
        assert [(e["type"], e["amount"]) for e in hold["events"]] == [
            ("held", "300.00"),
            ("settled", "100.00"),
            ("released", "200.00"),
        ]
        assert api.exposure(CUSTOMER_A, "GB20") == "100.00"
        assert (api.act(oid, "release").status_code, api.act(oid, "release").json) == (200, r.json)
        assert_problem(settle(api, oid, {"amount": "1.00", "settlement_id": "DN-2"}), 409, "order_id")
        assert settle(api, oid, {"amount": "100.00", "settlement_id": "DN-1"}).json == r.json  # a late retry


class TestHoldsList:
    def test_shows_each_hold_newest_first_with_its_life(self, api: Api, clock: Any) -> None:
        first = api.decide(order(amount="300.00")).json["order_id"]
        clock.advance(1)
        second = api.decide(order(amount="50.00")).json["order_id"]
        settle(api, first, {"amount": "100.00", "settlement_id": "DN-1"})
        api.act(first, "release")
        r = holds(api)
        assert r.status_code == 200
        assert [h["order_id"] for h in r.json["items"]] == [second, first]
        assert [e["type"] for e in r.json["items"][1]["events"]] == ["held", "settled", "released"]
        assert all(e["at"] for e in r.json["items"][1]["events"])
        assert r.json["next_cursor"] is None

    def test_filters_by_status_and_pages_with_a_cursor(self, api: Api, clock: Any) -> None:
        ids = []
        for _ in range(5):
            ids.append(api.decide(order(amount="10.00")).json["order_id"])
            clock.advance(1)
        api.act(ids[0], "release")
        page = holds(api, "?status=open&limit=2").json
        seen = [h["order_id"] for h in page["items"]]
        while page["next_cursor"]:
            page = holds(api, f"?status=open&limit=2&cursor={page['next_cursor']}").json
            seen += [h["order_id"] for h in page["items"]]
        assert seen == ids[:0:-1]
        assert [h["order_id"] for h in holds(api, "?status=released").json["items"]] == [ids[0]]
        both = holds(api, "?status=released&status=open").json["items"]
        assert len(both) == 5

    def test_a_hold_past_its_expiry_shows_as_expired_before_the_sweeper(self, api: Api, clock: Any) -> None:
        oid = api.decide(order(amount="10.00")).json["order_id"]
        clock.advance(7 * 86400 + 1)
        [h] = holds(api, "?status=expired").json["items"]
        assert (h["order_id"], h["status"], h["events"][-1]["type"]) == (oid, "expired", "expired")
        assert holds(api, "?status=open").json["items"] == []

    def test_roles_and_customer_limited_keys(self, api: Api) -> None:
        api.decide(order(amount="10.00"))
        for key in ("orders", "admin", "auditor", "orders_a"):
            assert holds(api, key=key).status_code == 200
        assert_problem(holds(api, customer=CUSTOMER_B, key="orders_a"), 404)
        assert_problem(holds(api, customer="8800000001", key=None), 401)

    def test_a_bad_cursor_or_status_is_422(self, api: Api) -> None:
        assert_problem(holds(api, "?cursor=nonsense"), 422, "cursor")
        assert_problem(holds(api, "?status=lost"), 422, "status.0")


def test_the_openapi_document_names_the_holds_route(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").json["paths"]
    assert "get" in paths["/v1/accounts/{customer_code}/{sale_group_code}/holds"]
