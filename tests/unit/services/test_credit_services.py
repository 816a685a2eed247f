"""Payments, the credit profile and limit requests as use cases on the in-memory unit of work."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from creditctl.domain.api_key import ApiKey, Role
from creditctl.domain.authority import NotAuthorised, Operator
from creditctl.domain.errors import InvalidRequest, OwnRequest
from creditctl.domain.payment import PaymentRecord
from creditctl.services.credit_profile import set_base_limit, view_credit_profile
from creditctl.services.limit_requests import RequestLimit, decide_limit_request, request_limit
from creditctl.services.payments import PostPayments, post_payments
from tests.unit.services.conftest import CUSTOMER, GROUP

pytestmark = pytest.mark.unit


ERP = Operator("erp")


def key(key_id: int, name: str) -> ApiKey:
    return ApiKey(  # approving a temporary limit is within the approver's authority: 1,000,000.00 here
        id=key_id,
        name=name,
        role=Role.ADMIN,
        customers=None,
        created_at=None,
        approval_limit=Decimal("1000000"),  # type: ignore[arg-type]
    )


def overdue(clock, days: int, invoice: str = "INV-1") -> PaymentRecord:
    return PaymentRecord(invoice, Decimal("100.00"), (clock.now() - timedelta(days=days)).date())


class TestPostPayments:
    def test_the_same_invoice_again_changes_nothing_and_other_figures_update_it(self, uow, clock) -> None:
        record = overdue(clock, 1)
        first = post_payments(PostPayments(CUSTOMER, GROUP, [record], by="erp"), who=ERP, uow=uow)
        again = post_payments(PostPayments(CUSTOMER, GROUP, [record], by="erp"), who=ERP, uow=uow)
        paid = PaymentRecord(
            "INV-1", Decimal("100.00"), record.due_date, Decimal("100.00"), clock.now().date()
        )
        update = post_payments(PostPayments(CUSTOMER, GROUP, [paid], by="erp"), who=ERP, uow=uow)
        assert [r for _, r in first.results + again.results + update.results] == [
            "created",
            "unchanged",
            "updated",
        ]
        assert len(uow.store.state.payment_changes) == 2

    def test_posted_overdue_payments_reach_the_decision_facts(self, uow, clock, desk) -> None:
        post_payments(PostPayments(CUSTOMER, GROUP, [overdue(clock, 100)], by="erp"), who=ERP, uow=uow)
        decision = desk.decide("10.00")
        assert decision.facts["payment.max_overdue_days"] == 100
        assert decision.outcome.value == "freeze"  # the default rule set's overdue rule

    def test_the_stored_facts_are_recomputed_on_the_next_day(self, uow, clock, desk) -> None:
        post_payments(PostPayments(CUSTOMER, GROUP, [overdue(clock, 3)], by="erp"), who=ERP, uow=uow)
        clock.advance(86400)
        assert desk.decide("10.00").facts["payment.max_overdue_days"] == 4

    def test_no_key_limited_to_customers_posts_payments_not_even_finance(self, uow, clock) -> None:
        cmd = PostPayments(CUSTOMER, GROUP, [overdue(clock, 1)], by="erp")
        for customers in (frozenset({CUSTOMER}), frozenset({"other"})):
            limited = ApiKey(5, "fin", Role.FINANCE, customers, clock.now())
            with pytest.raises(NotAuthorised, match="not limited to customers"):
                post_payments(cmd, who=limited, uow=uow)


class TestCreditProfile:
    def test_the_base_limit_set_by_an_administrator_is_the_decisions_limit(self, uow, desk) -> None:
        set_base_limit(
            CUSTOMER, GROUP, base_limit=Decimal("5000.00"), reason="review", who=key(9, "ann"), uow=uow
        )
        assert desk.decide("10.00").facts["credit.limit"] == Decimal("5000.00")
        view = view_credit_profile(CUSTOMER, GROUP, scope=None, uow=uow)
        assert view.history[0].trigger == "base_limit" and view.history[0].by == "ann"

    def test_a_reason_is_required(self, uow) -> None:
        with pytest.raises(InvalidRequest, match="reason"):
            set_base_limit(
                CUSTOMER, GROUP, base_limit=Decimal("1.00"), reason=" ", who=key(9, "ann"), uow=uow
            )


class TestLimitRequests:
    def test_four_eyes_then_the_temporary_limit_counts_until_it_ends(self, uow, clock, desk) -> None:
        until = clock.now() + timedelta(hours=1)
        request, _ = request_limit(
            RequestLimit(CUSTOMER, GROUP, Decimal("2000.00"), until, "season"), key=key(1, "ann"), uow=uow
        )
        with pytest.raises(OwnRequest, match="four eyes"):
            decide_limit_request(request.id, approve=True, note=None, key=key(1, "ann"), uow=uow)
        decide_limit_request(request.id, approve=True, note=None, key=key(2, "bob"), uow=uow)
        assert desk.decide("10.00").facts["credit.limit"] == Decimal("2000.00")
        clock.advance(3600)
        assert desk.decide("10.00").facts["credit.limit"] == Decimal("0.00")
