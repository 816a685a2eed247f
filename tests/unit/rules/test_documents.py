"""Rule documents as JSON: exact money both ways, a canonical form that round-trips."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from rules import RuleSetInvalid, default_rule_set_document, dumps_document, loads_document, parse_rule_set
from tests.unit.rules.builders import cmp, document, rule

pytestmark = pytest.mark.unit


class TestCodec:
    def test_loads_numbers_as_decimal_never_float(self) -> None:
        doc = loads_document('{"a": 12.50, "b": 3, "c": [0.1]}')
        assert doc == {"a": Decimal("12.50"), "b": 3, "c": [Decimal("0.1")]}
        assert isinstance(doc["a"], Decimal)

    def test_dumps_decimals_as_strings_with_sorted_compact_keys(self) -> None:
        assert dumps_document({"b": Decimal("1999.98"), "a": [1, "x"]}) == '{"a":[1,"x"],"b":"1999.98"}'

    def test_dumps_exponent_decimals_plainly(self) -> None:
        assert dumps_document({"a": Decimal("1E+3")}) == '{"a":"1000"}'

    def test_dumps_refuses_floats(self) -> None:
        with pytest.raises(RuleSetInvalid, match="floats are not allowed") as caught:
            dumps_document({"rules": [{"x": 1.5}]})
        assert caught.value.errors[0].pointer == "/rules/0/x"

    def test_dumps_refuses_what_json_cannot_hold(self) -> None:
        with pytest.raises(TypeError, match="set is not allowed"):
            dumps_document({"a": {1, 2}})

    def test_loads_refuses_bad_json(self) -> None:
        with pytest.raises(RuleSetInvalid, match="not valid JSON"):
            loads_document("{")

    def test_loads_refuses_nan(self) -> None:
        with pytest.raises(RuleSetInvalid, match="NaN"):
            loads_document('{"a": NaN}')

    def test_loads_refuses_a_non_object(self) -> None:
        with pytest.raises(RuleSetInvalid, match="JSON object"):
            loads_document("[1]")

    def test_keeps_non_ascii_text(self) -> None:
        assert "售达方" in dumps_document({"name": "售达方"})


class TestCanonicalDocument:
    def test_default_document_round_trips(self) -> None:
        rules = parse_rule_set(default_rule_set_document())
        text = dumps_document(rules.document)
        again = parse_rule_set(loads_document(text))
        assert again.document == rules.document
        assert dumps_document(again.document) == text

    def test_canonical_form_is_plain_json(self) -> None:
        document_ = parse_rule_set(default_rule_set_document()).document
        assert json.loads(json.dumps(document_)) == document_
        assert document_["params"]["low_balance_threshold"] == "10000.00"
        assert document_["params"]["max_balance_age_s"] == 1800

    def test_canonical_form_fills_defaults_and_normalises_numbers(self) -> None:
        doc = document(
            {
                "id": "r",
                "when": cmp("order.amount", "gt", Decimal("5.50")),
                "outcome": "block",
                "reason": "AB",
            },
            params={"safety_margin": Decimal("1.5"), "max_overdue_days": "30", "extra": 7},
        )
        canonical = parse_rule_set(doc).document
        assert canonical == {
            "name": "test",
            "params": {"safety_margin": "1.5", "max_overdue_days": 30, "extra": 7},
            "auto_unfreeze": None,
            "rules": [
                {
                    "id": "r",
                    "description": "",
                    "when": {"fact": "order.amount", "op": "gt", "value": "5.50"},
                    "outcome": "block",
                    "reason": "AB",
                    "message": "",
                    "actions": [],
                    "enabled": True,
                }
            ],
        }

    def test_round_trip_of_every_node_kind(self) -> None:
        when = {
            "all": [
                cmp("order.amount", "gt", {"add": [{"fact": "available"}, {"param": "p"}, "0.01"]}),
                {"not": cmp("order.channel", "in", ["web", "edi"])},
                {"any": [cmp("balance.amount", "missing"), cmp("credit.grade", "ne", "D")]},
                cmp("now.hour", "not_in", [0, 1]),
                cmp("payment.on_time_ratio", "lt", {"mul": [{"sub": ["1", "0.05"]}, 1]}),
            ]
        }
        rules = parse_rule_set(document(rule(when=when, actions=["notify:x.y"]), params={"p": "2.00"}))
        again = parse_rule_set(loads_document(dumps_document(rules.document)))
        assert again.document == rules.document
        assert again.document["rules"][0]["when"]["all"][0]["value"]["add"][2] == "0.01"

    def test_document_cannot_be_changed_through_the_rule_set(self) -> None:
        rules = parse_rule_set(default_rule_set_document())
        rules.document["rules"].clear()
        assert len(rules.document["rules"]) == 8

    def test_parse_does_not_change_its_input(self) -> None:
        doc = default_rule_set_document()
        before = json.dumps(doc, sort_keys=True)
        parse_rule_set(doc)
        assert json.dumps(doc, sort_keys=True) == before
