"""Every refused request: a clear 4xx as application/problem+json, and nothing changed behind it."""

from __future__ import annotations

import io
import json

import pytest

from tests.api.conftest import CUSTOMER_A, assert_problem, order
from tests.random_refs import random_order_id

pytestmark = pytest.mark.api

KIB = 1024


def raw_post(api, data, content_type="application/json", **kw):
    headers = {**api.auth("orders"), **({"Content-Type": content_type} if content_type else {})}
    return api.client.post("/v1/decisions", data=data, headers=headers, **kw)


def chunked_post(api, data: bytes):
    """A body without Content-Length, as a real WSGI server hands over a chunked request."""
    return api.client.post(
        "/v1/decisions",
        input_stream=io.BytesIO(data),
        headers={**api.auth("orders"), "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # what gunicorn sets for chunked bodies
    )


def padded_body(size: int, order_id: str) -> bytes:
    """A valid decision request of exactly `size` bytes (whitespace padding inside the object)."""
    core = json.dumps(order(order_id))
    body = core[:-1] + " " * (size - len(core.encode())) + "}"
    assert len(body.encode()) == size
    return body.encode()


@pytest.fixture
def unchanged(api, db_state):
    """Asserts, after the test body ran, that the database is as it was before and no order exists."""
    before = db_state()
    exposure = {g: api.exposure(CUSTOMER_A, g) for g in ("GA10", "GB20")}
    order_ids: list[str] = []
    yield order_ids
    assert db_state() == before
    assert {g: api.exposure(CUSTOMER_A, g) for g in ("GA10", "GB20")} == exposure
    for order_id in order_ids:
        assert api.decision(order_id).status_code == 404


class TestBodyIsRefusedBeforeAnythingHappens:
    def test_a_body_that_is_not_json_is_400(self, api, unchanged):
        body = assert_problem(raw_post(api, "{not json"), 400, "json")
        assert "not valid JSON" in body["detail"]

    def test_a_body_that_is_not_utf8_is_400(self, api, unchanged):
        assert_problem(raw_post(api, b'{"order_id": "\xff\xfe"}'), 400, "json")

    @pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
    def test_a_json_nan_or_infinity_literal_is_invalid_json(self, api, unchanged, literal):
        oid = random_order_id("nan")
        unchanged.append(oid)
        text = json.dumps(order(oid, amount="1.00")).replace('"1.00"', literal)
        assert_problem(raw_post(api, text), 400, "json")

    def test_a_nan_literal_hidden_in_metadata_is_invalid_json_too(self, api, unchanged):
        oid = random_order_id("nan-meta")
        unchanged.append(oid)
        text = json.dumps(order(oid, metadata={"x": "placeholder"})).replace('"placeholder"', "NaN")
        assert_problem(raw_post(api, text), 400, "json")

    @pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
    def test_a_body_that_is_not_declared_json_is_415(self, api, unchanged, content_type):
        oid = random_order_id("ctype")
        unchanged.append(oid)
        body = assert_problem(raw_post(api, json.dumps(order(oid)), content_type), 415, "Content-Type")
        assert "application/json" in body["detail"]

    @pytest.mark.parametrize("size", [64 * KIB + 1, 1024 * KIB, 10 * 1024 * KIB])
    def test_a_body_over_64_kib_is_413(self, api, unchanged, size):
        oid = random_order_id("big")
        unchanged.append(oid)
        body = assert_problem(raw_post(api, padded_body(size, oid)), 413)
        assert "64 KiB" in body["detail"]

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(lambda oid: padded_body(100 * KIB, oid), id="100-KiB"),
            # The first 64 KiB alone are a valid order: it must not be decided from a truncated body.
            pytest.param(lambda oid: padded_body(64 * KIB, oid) + b" " * 10, id="valid-64-KiB-prefix"),
        ],
    )
    def test_a_chunked_body_over_64_kib_is_413(self, api, unchanged, data):
        oid = random_order_id("chunked")
        unchanged.append(oid)
        assert_problem(chunked_post(api, data(oid)), 413)

    def test_a_chunked_body_of_exactly_64_kib_is_accepted(self, api):
        oid = random_order_id("chunked-limit")
        r = chunked_post(api, padded_body(64 * KIB, oid))
        assert r.status_code == 201, r.json

    def test_a_body_of_exactly_64_kib_is_accepted(self, api):
        oid = random_order_id("limit")
        r = raw_post(api, padded_body(64 * KIB, oid))
        assert r.status_code == 201, r.json
        assert r.json["order_id"] == oid

    @pytest.mark.parametrize("data", ["", "[]", '"an order"', "null", "42"])
    def test_a_body_that_is_not_an_object_is_422(self, api, unchanged, data):
        assert_problem(raw_post(api, data), 422)


class TestFieldsAreValidated:
    def test_an_unknown_field_is_422_and_named(self, api, unchanged):
        oid = random_order_id("unknown-field")
        unchanged.append(oid)
        body = assert_problem(api.decide(order(oid, colour="red")), 422, "colour")
        assert body["errors"]["colour"] == ["Unknown field."]

    @pytest.mark.parametrize("field", ["order_id", "customer_code", "sale_group_code", "amount"])
    def test_a_missing_field_is_422_and_named(self, api, unchanged, field):
        oid = random_order_id("missing")
        unchanged.append(oid)
        body = order(oid)
        del body[field]
        problem = assert_problem(api.decide(body), 422, field)
        assert set(problem["errors"]) == {field}

    @pytest.mark.parametrize(
        "amount",
        [
            pytest.param(100, id="json-integer"),
            pytest.param(99.5, id="json-float"),
            pytest.param(True, id="json-true"),
            pytest.param(None, id="null"),
            pytest.param("", id="empty"),
            pytest.param("   ", id="blank"),
            pytest.param("abc", id="non-numeric"),
            pytest.param("1,000.00", id="thousands-separator"),
            pytest.param("1e3", id="exponent"),
            pytest.param("NaN", id="NaN-string"),
            pytest.param("Infinity", id="Infinity-string"),
            pytest.param("-Infinity", id="minus-Infinity-string"),
            pytest.param("0", id="zero"),
            pytest.param("0.00", id="zero-with-places"),
            pytest.param("-1.00", id="negative"),
            pytest.param("-0.01", id="negative-cent"),
            pytest.param("1.001", id="three-decimals"),
            pytest.param("1.005", id="three-decimals-that-would-round"),
            pytest.param("1000000000000.01", id="above-the-ceiling"),
            pytest.param("99999999999999999", id="far-above-the-ceiling"),
            pytest.param(" 1.00", id="leading-space"),
            pytest.param("01.00", id="leading-zero"),
        ],
    )
    def test_an_amount_that_is_not_exact_positive_money_is_422(self, api, unchanged, amount):
        oid = random_order_id("amount")
        unchanged.append(oid)
        problem = assert_problem(api.decide(order(oid, amount=amount)), 422, "amount")
        assert set(problem["errors"]) == {"amount"}

    @pytest.mark.parametrize(
        "order_id",
        [
            pytest.param("", id="empty"),
            pytest.param("x" * 65, id="65-characters"),
            pytest.param("PO-\u0000-1", id="nul"),
            pytest.param("PO-\n-1", id="newline"),
            pytest.param("PO-\r-1", id="carriage-return"),
            pytest.param("PO-\t-1", id="tab"),
            pytest.param("PO-\u202e-1", id="right-to-left-override"),
            pytest.param("PO-\u200b-1", id="zero-width-space"),
            pytest.param("PO-\u2028-1", id="line-separator"),
            pytest.param(" PO-1", id="leading-space"),
            pytest.param(42, id="number"),
        ],
    )
    def test_a_bad_order_id_is_422(self, api, unchanged, order_id):
        problem = assert_problem(api.decide(order(amount="1.00") | {"order_id": order_id}), 422, "order_id")
        assert set(problem["errors"]) == {"order_id"}

    def test_an_order_id_of_64_characters_is_accepted(self, api):
        r = api.decide(order("x" * 64))
        assert r.status_code == 201, r.json

    @pytest.mark.parametrize("field", ["customer_code", "sale_group_code"])
    @pytest.mark.parametrize("value", ["", "../GA10", "GA10\n", "x" * 33])
    def test_a_malformed_code_is_422(self, api, unchanged, field, value):
        assert_problem(api.decide(order() | {field: value}), 422, field)

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("status", "settled"),
            ("hold", {"id": "h1", "amount": "1.00", "status": "open"}),
            ("hold", None),
            ("outcome", "approve"),
            ("expires_at", "2099-01-01T00:00:00Z"),
            ("decision_id", "d-1"),
            ("shortfall", "0.00"),
        ],
    )
    def test_a_field_a_client_must_not_set_is_refused(self, api, unchanged, field, value):
        oid = random_order_id("server-field")
        unchanged.append(oid)
        assert_problem(api.decide(order(oid, **{field: value})), 422, field)

    @pytest.mark.parametrize(
        "metadata",
        [
            pytest.param({f"k{i}": "v" for i in range(33)}, id="33-keys"),
            pytest.param({"k": {"nested": "object"}}, id="nested-object"),
            pytest.param({"k": list(range(10_000))}, id="10000-item-list"),
            pytest.param({"k": "x" * 513}, id="long-value"),
            pytest.param({"k" * 65: "v"}, id="long-key"),
            pytest.param(["not", "an", "object"], id="a-list"),
        ],
    )
    def test_metadata_beyond_its_limits_is_422(self, api, unchanged, metadata):
        oid = random_order_id("metadata")
        unchanged.append(oid)
        assert_problem(api.decide(order(oid, metadata=metadata)), 422, "metadata")

    def test_the_largest_amount_allowed_is_accepted_and_decided(self, api):
        r = api.decide(order(amount="1000000000000.00"))
        assert r.status_code == 201, r.json
        assert r.json["outcome"] == "block"
        assert r.json["hold"] is None


class TestUnknownThings:
    def test_an_unknown_customer_is_404_naming_the_customer_code(self, api, unchanged):
        oid = random_order_id("who")
        unchanged.append(oid)
        assert_problem(api.decide(order(oid, customer="8899999999")), 404, "customer_code")

    def test_an_unknown_sales_group_of_a_known_customer_is_404_naming_it(self, api, unchanged):
        oid = random_order_id("group")
        unchanged.append(oid)
        body = assert_problem(api.decide(order(oid, group="ZZ99")), 404, "sale_group_code")
        assert "ZZ99" in body["detail"]

    @pytest.mark.parametrize("action", ["settle", "release", "recheck"])
    def test_acting_on_an_unknown_order_is_404(self, api, unchanged, action):
        oid = random_order_id("ghost")
        unchanged.append(oid)
        assert_problem(api.act(oid, action), 404, "order_id")

    def test_reading_an_unknown_order_is_404(self, api, unchanged):
        assert_problem(api.decision(random_order_id("ghost")), 404, "order_id")

    def test_an_unknown_path_and_a_wrong_method_are_problems_too(self, api, unchanged):
        assert_problem(api.client.get("/v1/nothing-here", headers=api.auth("orders")), 404)
        r = api.client.get("/v1/decisions", headers=api.auth("orders"))
        assert_problem(r, 405)
        assert "POST" in r.headers["Allow"]


class TestRetriedEndsAreReplays:
    @pytest.mark.parametrize("action", ["settle", "release"])
    def test_the_same_step_again_answers_200_with_the_same_hold_and_changes_nothing(
        self, api, db_state, action
    ):
        oid = random_order_id("retry")
        assert api.decide(order(oid)).status_code == 201
        first = api.act(oid, action)
        assert first.status_code == 200
        before, exposure = db_state(), api.exposure(CUSTOMER_A, "GB20")
        again = api.act(oid, action)
        assert (again.status_code, again.json) == (200, first.json)
        assert db_state() == before
        assert api.exposure(CUSTOMER_A, "GB20") == exposure


class TestEndedHoldsCannotEndAgain:
    @pytest.mark.parametrize(("first", "second"), [("settle", "release"), ("release", "settle")])
    def test_ending_an_ended_hold_the_other_way_is_409_and_changes_nothing(
        self, api, db_state, first, second
    ):
        oid = random_order_id("ended")
        assert api.decide(order(oid)).status_code == 201
        assert api.act(oid, first).status_code == 200
        before, exposure = db_state(), api.exposure(CUSTOMER_A, "GB20")
        decision = api.decision(oid).json
        body = assert_problem(api.act(oid, second), 409, "order_id")
        assert "settled" in body["detail"] or "released" in body["detail"]
        assert db_state() == before
        assert api.exposure(CUSTOMER_A, "GB20") == exposure
        assert api.decision(oid).json == decision

    @pytest.mark.parametrize("action", ["settle", "release"])
    def test_a_blocked_order_has_no_hold_to_end(self, api, db_state, action):
        oid = random_order_id("blocked")
        assert api.decide(order(oid, amount="200000.00")).json["outcome"] == "block"
        before = db_state()
        assert_problem(api.act(oid, action), 409, "order_id")
        assert db_state() == before


class TestARefusedAttemptIsNotRemembered:
    """Reliability item 2: after a refused first attempt, the corrected request decides normally."""

    @pytest.mark.parametrize(
        "bad",
        [{"amount": "1.001"}, {"amount": 100}, {"sale_group_code": "ZZ99"}, {"customer_code": "8899999999"}],
    )
    def test_the_corrected_request_is_decided(self, api, bad):
        oid = random_order_id("retry")
        assert api.decide(order(oid) | bad).status_code in (404, 422)
        r = api.decide(order(oid))
        assert r.status_code == 201, r.json
        assert r.json["outcome"] == "approve"


def order_text(oid: str, **replace: str) -> bytes:
    """A decision request as raw JSON text, with members' raw JSON values swapped in by `replace`."""
    members = {k: json.dumps(v) for k, v in order(oid).items()} | replace
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in members.items()) + "}").encode()


class TestJsonWithoutOneMeaningIsRefused:
    """Bodies Python's json would read, but that have no single meaning, no UTF-8 form, or no end."""

    @pytest.mark.parametrize(
        ("replace", "field"),
        [
            pytest.param({"order_id": '"C-9\\ud800"'}, "order_id", id="order-id"),
            pytest.param({"order_id": '"C-9\\udc00x"'}, "order_id", id="low-surrogate"),
            pytest.param({"metadata": '{"note": "\\ud83d"}'}, "metadata.note", id="in-metadata"),
            pytest.param({"metadata": '{"k\\ud800": "v"}'}, "metadata.k\\ud800", id="in-a-key"),
        ],
    )
    def test_a_lone_utf16_surrogate_escape_is_422_naming_the_field(self, api, unchanged, replace, field):
        oid = random_order_id("surrogate")
        unchanged.append(oid)
        body = assert_problem(raw_post(api, order_text(oid, **replace)), 422, field)
        assert "surrogate" in body["errors"][field][0]
        assert "surrogate" in body["detail"]

    def test_a_surrogate_pair_escape_is_one_character_and_accepted(self, api):
        oid = random_order_id("pair")
        r = raw_post(api, order_text(oid, metadata='{"note": "\\ud83d\\ude00"}'))
        assert r.status_code == 201, r.json

    @pytest.mark.parametrize("where", ["body", "metadata"])
    def test_json_nested_1100_levels_deep_is_400_nested_too_deeply(self, api, unchanged, where):
        oid = random_order_id("deep")
        unchanged.append(oid)
        deep = "[" * 1100 + "]" * 1100
        data = deep.encode() if where == "body" else order_text(oid, metadata=deep)
        body = assert_problem(raw_post(api, data), 400, "json")
        assert "nested too deeply" in body["detail"]

    def test_brackets_inside_strings_do_not_count_as_nesting(self, api):
        oid = random_order_id("brackets")
        r = raw_post(api, order_text(oid, metadata=json.dumps({"note": "[{" * 200})))
        assert r.status_code == 201, r.json

    def test_a_duplicate_key_is_422_naming_the_key(self, api, unchanged):
        oid = random_order_id("dup")
        unchanged.append(oid)
        data = order_text(oid)[:-1] + b', "amount": "99999.00"}'
        body = assert_problem(raw_post(api, data), 422, "amount")
        assert "more than once" in body["errors"]["amount"][0]
        assert "'amount'" in body["detail"]

    def test_a_duplicate_key_in_a_nested_object_is_named_by_its_path(self, api, unchanged):
        oid = random_order_id("dup-meta")
        unchanged.append(oid)
        data = order_text(oid, metadata='{"k": "a", "k": "b"}')
        assert_problem(raw_post(api, data), 422, "metadata.k")

    def test_a_duplicate_key_is_refused_on_every_route_that_reads_a_body(self, api, db_state):
        before = db_state()
        r = api.client.post(
            f"/v1/accounts/{CUSTOMER_A}/GB20/freeze",
            data=b'{"reason": "a", "reason": "b"}',
            headers={**api.auth("admin"), "Content-Type": "application/json"},
        )
        assert_problem(r, 422, "reason")
        assert db_state() == before

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(b'{"a": 1, "a": 2}', id="duplicate-key"),
            pytest.param(b'{"a": "\\ud800"}', id="escaped-surrogate"),
            pytest.param(b'{"a": "\xed\xa0\x80"}', id="utf8-encoded-surrogate"),
            pytest.param(b"[" * 1100 + b"]" * 1100, id="1100-levels"),
        ],
    )
    def test_the_apps_json_provider_refuses_the_same(self, app, data):
        """request.get_json() (a view reading the body as sent) goes through the app's provider."""
        with pytest.raises(ValueError):
            app.json.loads(data)


class TestAmountsAreReadWhole:
    @pytest.mark.parametrize("amount", ["100.00\n", "100\n", "100.00\r\n", "\n100.00"])
    def test_an_amount_with_a_newline_is_422(self, api, unchanged, amount):
        oid = random_order_id("newline")
        unchanged.append(oid)
        assert_problem(api.decide(order(oid, amount=amount)), 422, "amount")

    @pytest.mark.parametrize("field", ["customer_code", "sale_group_code"])
    def test_a_code_with_a_final_newline_is_422(self, api, unchanged, field):
        oid = random_order_id("code-newline")
        unchanged.append(oid)
        value = {"customer_code": CUSTOMER_A, "sale_group_code": "GB20"}[field] + "\n"
        assert_problem(api.decide(order(oid) | {field: value}), 422, field)

    @pytest.mark.parametrize(
        "amount", ["1234567890123456.00", "1000000000000.01", "99999999999999999", "1234567890123456.001"]
    )
    def test_an_amount_above_the_ceiling_is_told_it_is_too_large(self, api, unchanged, amount):
        oid = random_order_id("huge")
        unchanged.append(oid)
        body = assert_problem(api.decide(order(oid, amount=amount)), 422, "amount")
        assert body["errors"]["amount"] == ["Too large: must be at most 1,000,000,000,000.00."]
