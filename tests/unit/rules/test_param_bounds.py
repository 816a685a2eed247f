"""The parameter bounds table: every known param has a lower and an upper bound, one check enforces them
for a rule document and for an account's overrides alike, and a version published before the bounds
existed is read back within them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from creditctl.domain.money import MAX_AMOUNT
from rules import KNOWN_PARAMS, FactType, ParamSpec, RuleSetInvalid, default_rule_set_document, parse_rule_set
from rules.param_catalogue import MAX_BALANCE_AGE_S, MIN_HOLD_TTL_S, param_problem
from rules.params import check_overrides

SPECS = list(KNOWN_PARAMS.values())
ADMINISTRATORS_GUIDE = Path(__file__).resolve().parents[3] / "docs" / "administrators.md"
LATEST = datetime(9999, 12, 31, tzinfo=UTC) - timedelta(days=365 * 10)  # far in the future, with room


def wire(spec: ParamSpec, value: Decimal) -> int | str:
    """The value as JSON carries it: a whole number, or a decimal string."""
    return int(value) if spec.type is FactType.INTEGER else format(value, "f")


def step(spec: ParamSpec) -> Decimal:
    """The smallest step a value of this param can take."""
    return Decimal(1).scaleb(-spec.places)


def document_problems(name: str, value: int | str) -> dict[str, str]:
    document = default_rule_set_document()
    document["params"][name] = value
    try:
        parse_rule_set(document)
    except RuleSetInvalid as exc:
        return {p.pointer: p.message for p in exc.errors}
    return {}


def override_problems(name: str, value: int | str) -> dict[str, str]:
    return dict(check_overrides({name: value}, "/params")[1])


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
class TestEveryParam:
    def test_has_a_unit_and_bounds_around_its_default(self, spec: ParamSpec) -> None:
        assert spec.unit in {"seconds", "days", "CNY", "ratio", "factor"}
        assert spec.minimum <= spec.default <= spec.maximum
        assert param_problem(spec, spec.default) is None

    @pytest.mark.parametrize("end", ["minimum", "maximum"])
    def test_its_bounds_are_accepted_in_a_document_and_as_an_override(
        self, spec: ParamSpec, end: str
    ) -> None:
        value = wire(spec, getattr(spec, end))
        assert document_problems(spec.name, value) == {}
        assert check_overrides({spec.name: value}) == ({spec.name: value}, [])

    @pytest.mark.parametrize("end", ["minimum", "maximum"])
    def test_one_step_beyond_a_bound_is_refused_alike_naming_the_bounds(
        self, spec: ParamSpec, end: str
    ) -> None:
        beyond = spec.minimum - step(spec) if end == "minimum" else spec.maximum + step(spec)
        pointer = f"/params/{spec.name}"
        message = document_problems(spec.name, wire(spec, beyond))[pointer]
        assert override_problems(spec.name, wire(spec, beyond)) == {pointer: message}
        assert f"must be between {spec.show(spec.minimum)} and {spec.show(spec.maximum)}" in message

    def test_a_value_past_every_type_s_range_is_refused(self, spec: ParamSpec) -> None:
        huge = 2**63 - 1 if spec.type is FactType.INTEGER else "99999999999999999.00"
        assert f"/params/{spec.name}" in document_problems(spec.name, huge)
        assert f"/params/{spec.name}" in override_problems(spec.name, huge)

    def test_a_version_stored_before_the_bounds_is_read_within_them(self, spec: ParamSpec) -> None:
        document = default_rule_set_document()
        for beyond, bound in ((spec.minimum - 1, spec.minimum), (spec.maximum * 10 + 1, spec.maximum)):
            document["params"][spec.name] = wire(spec, beyond)
            assert parse_rule_set(document, stored=True).params[spec.name] == bound


class TestTheTable:
    def test_seconds_and_days_bounds_fit_a_date_and_money_bounds_the_contract(self) -> None:
        for spec in SPECS:
            if spec.unit == "seconds":
                assert LATEST + timedelta(seconds=int(spec.maximum)) > LATEST
            elif spec.unit == "days":
                assert LATEST + timedelta(days=int(spec.maximum)) > LATEST
            elif spec.type is FactType.MONEY:
                assert (spec.minimum, spec.maximum) == (Decimal(0), MAX_AMOUNT)

    def test_ratios_are_shares_and_multipliers_never_raise_the_base_limit(self) -> None:
        shares = [s for s in SPECS if s.type is FactType.RATIO and s.name != "avg_balance_cap_factor"]
        assert len(shares) == 7
        assert all((s.minimum, s.maximum, s.places) == (0, 1, 4) for s in shares)

    def test_a_hold_outlives_the_oldest_balance_relied_on_by_the_time_allowed_for_haier_to_debit(
        self,
    ) -> None:
        hold, age = KNOWN_PARAMS["hold_ttl_s"], KNOWN_PARAMS["max_balance_age_s"]
        assert hold.minimum == MIN_HOLD_TTL_S == 3600
        assert age.maximum == MAX_BALANCE_AGE_S
        assert hold.minimum - age.maximum >= 1800  # 30 minutes for the order to reach Haier and be debited
        assert KNOWN_PARAMS["refresh_after_s"].maximum <= age.maximum

    @pytest.mark.parametrize(
        ("name", "value", "message"),
        [
            ("hold_ttl_s", 0, "'hold_ttl_s' must be between 3600 and 7776000 (seconds), got 0"),
            (
                "base_credit_limit",
                "99999999999999999.00",
                "'base_credit_limit' must be between 0.00 and 1000000000000.00 (CNY), "
                "got 99999999999999999.00",
            ),
            ("safety_margin", "1.005", "'safety_margin' has at most 2 decimal places, got 1.005"),
            ("grade_a_min_on_time_ratio", "0.95001", "has at most 4 decimal places"),
            ("grade_multiplier_a", "1.5", "'grade_multiplier_a' must be between 0 and 1 (ratio), got 1.5"),
        ],
    )
    def test_the_message_names_the_param_and_the_bound(self, name: str, value: Any, message: str) -> None:
        assert message in override_problems(name, value)[f"/params/{name}"]
        assert message in document_problems(name, value)[f"/params/{name}"]

    def test_a_stored_version_s_param_with_too_many_places_is_read_rounded_to_them(self) -> None:
        document = default_rule_set_document()
        document["params"] |= {"safety_margin": "1.005", "grade_a_min_on_time_ratio": "0.123456"}
        params = parse_rule_set(document, stored=True).params
        assert (params["safety_margin"], params["grade_a_min_on_time_ratio"]) == (
            Decimal("1.00"),
            Decimal("0.1235"),
        )

    def test_params_of_a_document_s_own_are_not_bounded(self) -> None:
        document = default_rule_set_document()
        document["params"]["my_own_limit"] = "-5000.00"
        assert parse_rule_set(document).params["my_own_limit"] == Decimal("-5000.00")


def test_the_guides_table_is_the_catalogue() -> None:
    """The Parameter bounds table of the administrators' guide says what the code checks, row for row."""
    guide = ADMINISTRATORS_GUIDE.read_text(encoding="utf-8")
    text = guide.split("### Parameter bounds", 1)[1].split("\n\n| parameter")[1]
    text = text.split("\n\n", 1)[0]  # the table, up to the blank line after it
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| `")]
    documented = {cells[0].strip().strip("`"): [c.strip() for c in cells[1:]] for cells in rows}
    assert documented == {
        spec.name: [
            spec.description,
            spec.show(spec.default) if spec.type is not FactType.RATIO else format(spec.default, "f"),
            spec.show(spec.minimum),
            spec.show(spec.maximum),
            spec.unit,
        ]
        for spec in SPECS
    }
