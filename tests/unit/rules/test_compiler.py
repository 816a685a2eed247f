"""What compiling a rule set into a function promises beyond sameness: no document text in the code,
messages rendered when read and whatever the caller's decimal context, Match as a frozen value."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import threading
import time
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import Match, Outcome, default_rule_set_document, parse_rule_set
from rules.compiler import source_of
from rules.templates import _money, _plain
from tests.unit.rules.builders import cmp, document, one_rule, rule

pytestmark = pytest.mark.unit

D = Decimal
HOSTILE = "x'); import os; os._exit(1); ('"


def test_nothing_a_document_holds_becomes_source_text() -> None:
    rules = parse_rule_set(
        document(
            rule(
                "sneaky_id",
                {"any": [cmp("order.channel", "eq", HOSTILE), cmp("order.amount", "gt", "123456.78")]},
                reason="SNEAKY_REASON",
                message="sneaky message {order.channel}",
                actions=["notify:sneaky.action"],
            ),
            params={"sneaky_param": "7.00"},
        )
    )
    source = source_of(rules._plan)
    for text in (
        HOSTILE,
        "import os",
        "sneaky_id",
        "SNEAKY_REASON",
        "sneaky message",
        "sneaky.action",
        "123456",
    ):
        assert text not in source
    (match,) = rules.evaluate({"order.channel": HOSTILE, "order.amount": D(1)}).matches
    assert (match.rule_id, match.reason, match.message) == (
        "sneaky_id",
        "SNEAKY_REASON",
        f"sneaky message {HOSTILE}",
    )


def test_threads_that_meet_a_new_rule_set_at_once_compile_it_once_and_all_evaluate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """50 first decisions at once on a fresh set: one compile (CPython 3.11 compile() is not thread-safe)."""
    from rules import rule_set as rule_set_module

    real, calls, inside, most = rule_set_module.compile_rule_set, [], [0], [0]
    guard = threading.Lock()

    def counted(plan: object) -> object:  # slowed down, so that unguarded threads would overlap in it
        with guard:
            calls.append(plan)
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)
        try:
            return real(plan)  # type: ignore[arg-type]
        finally:
            with guard:
                inside[0] -= 1

    monkeypatch.setattr(rule_set_module, "compile_rule_set", counted)
    rules = parse_rule_set(default_rule_set_document())
    start, errors, outcomes = threading.Barrier(50), [], []

    def decide() -> None:
        start.wait()
        try:
            outcomes.append(rules.evaluate({"order.amount": D(1)}).outcome)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=decide) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(outcomes) == 50
    assert len(calls) == 1 and most[0] == 1


def test_the_functions_are_written_once_per_rule_set() -> None:
    rules = one_rule(cmp("order.amount", "gt", 0))
    rules.evaluate({"order.amount": D(1)})
    first = rules._evaluate
    rules.evaluate({"order.amount": D(2)})
    rules.outcome({"order.amount": D(2)})
    assert first is not None and rules._evaluate is first


class TestLazyMessages:
    def test_a_message_shows_the_facts_seen_even_if_the_caller_changes_them_before_reading_it(self) -> None:
        facts = {"order.amount": D("10.00"), "available": D("5.00")}
        rules = one_rule(cmp("order.amount", "gt", 0), message="{order.amount} over {available}")
        (match,) = rules.evaluate(facts).matches
        facts["order.amount"], facts["available"] = D(999), D(1)
        assert match.message == "10.00 over 5.00"

    @pytest.mark.parametrize("rounding", [ROUND_DOWN, ROUND_HALF_UP])
    def test_money_renders_half_even_to_cents_whatever_the_readers_decimal_context(
        self, rounding: str
    ) -> None:
        rules = one_rule(cmp("order.amount", "gt", 0), message="{order.amount} {available}")
        (match,) = rules.evaluate({"order.amount": D("1.005"), "available": D("2.675")}).matches
        with localcontext(rounding=rounding, prec=3):
            assert match.message == "1.00 2.68"

    def test_a_message_with_no_placeholders_is_the_text(self) -> None:
        (match,) = (
            one_rule(cmp("order.amount", "gt", 0), message="plain").evaluate({"order.amount": D(1)}).matches
        )
        assert match.message == "plain"


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    st.decimals(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=False, allow_infinity=False, places=2)
    | st.integers()
)
def test_money_renders_as_format_two_places_did_under_the_default_context(value: Decimal | int) -> None:
    assert _money(value) == format(value, ".2f")


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.decimals(allow_nan=False, allow_infinity=False) | st.integers())
def test_ratios_and_counts_render_as_before(value: Decimal | int) -> None:
    assert _plain(value) == (format(value, "f") if isinstance(value, Decimal) else str(value))


class TestMatch:
    def test_a_match_is_a_frozen_value_of_five_fields(self) -> None:
        rules = one_rule(cmp("order.amount", "gt", 0), outcome="defer", message="{order.amount}")
        (match,) = rules.evaluate({"order.amount": D(1)}).matches
        built = Match("r", Outcome.DEFER, "TEST_REASON", "1.00", ())
        assert match == built and hash(match) == hash(built)
        assert match != Match("r", Outcome.DEFER, "TEST_REASON", "2.00", ())
        fields = "outcome=<Outcome.DEFER: 'defer'>, reason='TEST_REASON', message='1.00', actions=()"
        assert repr(match) == repr(built) == f"Match(rule_id='r', {fields})"
        with pytest.raises(dataclasses.FrozenInstanceError):
            match.reason = "OTHER"  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            del match.rule_id

    def test_a_match_copies_and_pickles_as_its_fields(self) -> None:
        rules = one_rule(cmp("order.amount", "gt", 0), message="{order.amount}")
        (found,) = rules.evaluate({"order.amount": D("2.5")}).matches
        assert copy.deepcopy(found) == copy.copy(found) == pickle.loads(pickle.dumps(found)) == found
        assert pickle.loads(pickle.dumps(found)).message == "2.50"
        match found:
            case Match(rule_id, _, reason, message, _):
                assert (rule_id, reason, message) == ("r", "TEST_REASON", "2.50")
