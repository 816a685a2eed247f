"""The authority table, act by act, with one person holding several keys: whatever keys an owner holds,
a key limited to a customer never raises that customer's credit, and four eyes are two owners."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from adapters.fake.clock import FakeClock
from creditctl.domain.api_key import ApiKey, Role
from creditctl.domain.authority import AUTHORITY, Act, NotAuthorised, Operator, Scope, authorize
from creditctl.domain.errors import AlreadyFrozen, OwnRequest
from creditctl.services.credit_profile import set_base_limit
from creditctl.services.freeze_account import freeze_account, unfreeze_account
from creditctl.services.limit_requests import RequestLimit, decide_limit_request, request_limit
from rules import Outcome
from tests.keys import key
from tests.unit.services.conftest import CUSTOMER, GROUP, Desk

pytestmark = pytest.mark.unit

LIMITED = frozenset({CUSTOMER})


def alices_keys() -> dict[str, ApiKey]:
    """One person, alice, holding a key of every role, each once limited to the customer and once not."""
    return {
        f"{role.value}{'-limited' if customers else ''}": key(
            f"alice-{role.value}{'-c' if customers else ''}", role, customers=customers, owner="alice"
        )
        for role in Role
        for customers in (None, LIMITED)
    }


@pytest.mark.parametrize("act", list(Act))
def test_every_cell_of_the_table_holds_for_every_key_one_person_holds(act: Act) -> None:
    rule = AUTHORITY[act]
    for held in alices_keys().values():
        allowed = held.role in rule.roles and (rule.scope is Scope.ANY or held.customers is None)
        if allowed:
            authorize(act, held)
        else:
            with pytest.raises(NotAuthorised):
                authorize(act, held)
    authorize(act, Operator("ops"))  # the operator at the command line: global authority


def test_a_key_limited_to_a_customer_never_has_an_act_that_raises_its_credit() -> None:
    raising = (
        Act.RAISE_BASE_LIMIT,
        Act.SET_ACCOUNT_PARAMS,
        Act.CHANGE_RULE_SETS,
        Act.LIFT_OTHERS_FREEZE,
        Act.RELEASE_OVERDRAFT,
        Act.POST_PAYMENTS,
    )
    assert all(AUTHORITY[a].scope is Scope.GLOBAL for a in raising)
    assert AUTHORITY[Act.DECIDE_TEMPORARY_LIMIT].second_owner


class TestBaseLimit:
    def test_a_limited_admin_may_lower_but_not_raise_the_base_limit(self, desk: Desk) -> None:
        hq, alice = key("hq"), key("alice", customers=LIMITED)
        set_base_limit(CUSTOMER, GROUP, base_limit=Decimal("5000.00"), reason="review", who=hq, uow=desk.uow)
        with pytest.raises(NotAuthorised, match="not limited to customers"):
            set_base_limit(
                CUSTOMER, GROUP, base_limit=Decimal("1000000.00"), reason="x", who=alice, uow=desk.uow
            )
        assert desk.account().credit.base_limit == Decimal("5000.00")
        set_base_limit(CUSTOMER, GROUP, base_limit=Decimal("4000.00"), reason="risk", who=alice, uow=desk.uow)
        assert desk.account().credit.base_limit == Decimal("4000.00")

    def test_clearing_a_base_limit_below_the_rule_parameter_is_a_raise(self, desk: Desk) -> None:
        """null means 'back to base_credit_limit': where that is higher, it gives credit."""
        set_base_limit(CUSTOMER, GROUP, base_limit=Decimal("0.00"), reason="r", who=key("hq"), uow=desk.uow)
        alice = key("alice", customers=LIMITED)
        # the default parameter is 0.00: clearing is no raise, so it is allowed
        set_base_limit(CUSTOMER, GROUP, base_limit=None, reason="r", who=alice, uow=desk.uow)
        set_base_limit(CUSTOMER, GROUP, base_limit=Decimal("0.01"), reason="r", who=key("hq"), uow=desk.uow)
        set_base_limit(CUSTOMER, GROUP, base_limit=None, reason="r", who=alice, uow=desk.uow)  # 0.01 → 0.00
        with pytest.raises(NotAuthorised):
            set_base_limit(CUSTOMER, GROUP, base_limit=Decimal("0.01"), reason="r", who=alice, uow=desk.uow)


class TestFreezes:
    def test_an_owner_lifts_their_own_freeze_with_any_of_their_keys(self, desk: Desk) -> None:
        first, second = (
            key("alice-1", customers=LIMITED, owner="alice"),
            key("alice-2", customers=LIMITED, owner="alice"),
        )
        freeze_account(CUSTOMER, GROUP, reason="dispute", who=first, uow=desk.uow)
        unfreeze_account(CUSTOMER, GROUP, reason="settled", who=second, uow=desk.uow)
        assert not desk.account().is_frozen

    def test_a_freeze_the_head_office_set_needs_global_authority_to_lift(self, desk: Desk) -> None:
        freeze_account(CUSTOMER, GROUP, reason="fraud check", who=key("hq"), uow=desk.uow)
        limited = key("alice", customers=LIMITED)
        with pytest.raises(NotAuthorised, match="another owner or the rules"):
            unfreeze_account(CUSTOMER, GROUP, reason="I say so", who=limited, uow=desk.uow)
        assert desk.account().frozen_by == "admin:hq"
        unfreeze_account(CUSTOMER, GROUP, reason="cleared", who=key("alice-hq", owner="alice"), uow=desk.uow)
        assert not desk.account().is_frozen

    def test_the_rules_freeze_is_neither_lifted_nor_taken_over_by_a_limited_key(self, desk: Desk) -> None:
        desk.new_balance("0.00")
        assert desk.decide("1.00").outcome is Outcome.FREEZE
        limited = key("alice", customers=LIMITED)
        with pytest.raises(AlreadyFrozen):  # taking it over would make it hers to lift
            freeze_account(CUSTOMER, GROUP, reason="mine now", who=limited, uow=desk.uow)
        with pytest.raises(NotAuthorised):
            unfreeze_account(CUSTOMER, GROUP, reason="paid", who=limited, uow=desk.uow)
        assert (desk.account().frozen_by or "").startswith("rule:")


class TestFourEyes:
    def request(self, desk: Desk, clock: FakeClock, who: ApiKey) -> str:
        cmd = RequestLimit(CUSTOMER, GROUP, Decimal("900000.00"), clock.now() + timedelta(days=1), "season")
        return request_limit(cmd, key=who, uow=desk.uow)[0].id

    def test_a_second_key_of_the_same_owner_is_not_a_second_person(
        self, desk: Desk, clock: FakeClock
    ) -> None:
        request_id = self.request(desk, clock, key("alice-1", owner="alice"))
        with pytest.raises(OwnRequest, match="four eyes compares owners"):
            decide_limit_request(
                request_id,
                approve=True,
                note=None,
                key=key("alice-2", owner="alice", approval_limit="1000000.00"),
                uow=desk.uow,
            )
        decided, _ = decide_limit_request(
            request_id, approve=True, note=None, key=key("bob", approval_limit="1000000.00"), uow=desk.uow
        )
        assert (decided.requested_by_owner, decided.decided_by_owner) == ("alice", "bob")

    @pytest.mark.parametrize("spelling", ["Alice", " alice ", "ALICE", "\uff21\uff4c\uff49\uff43\uff45"])
    def test_an_owner_spelled_otherwise_is_the_same_person(
        self, desk: Desk, clock: FakeClock, spelling: str
    ) -> None:
        request_id = self.request(desk, clock, key("alice-1", owner="alice"))
        other = key("x", owner=spelling)
        with pytest.raises(OwnRequest):
            decide_limit_request(request_id, approve=True, note=None, key=other, uow=desk.uow)

    def test_a_key_made_with_the_same_name_is_the_same_owner(self, desk: Desk, clock: FakeClock) -> None:
        request_id = self.request(desk, clock, key("ann"))
        with pytest.raises(OwnRequest):
            decide_limit_request(request_id, approve=True, note=None, key=key("ann"), uow=desk.uow)
