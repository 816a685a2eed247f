"""SQL repositories on SQLite and PostgreSQL: exact money, aware UTC times, each write once."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError, StatementError

from adapters.sql.balance_reports import SqlSharedBalanceReports
from adapters.sql.rule_sets import RuleSetCache
from adapters.sql.tables import credit_accounts, outbox
from adapters.sql.unit_of_work import SqlUnitOfWork
from creditctl.domain.account import AccountStatus, CreditAccount, PaymentProfile
from creditctl.domain.api_key import Role, hash_secret, new_secret
from creditctl.domain.balance import BalanceReport, BalanceSnapshot, PayerBalance
from creditctl.domain.decision import Decision, DecisionState, Order, Reason
from creditctl.domain.hold import Hold, HoldStatus
from creditctl.ports.repositories import OrderIdTaken
from rules import Outcome, default_rule_set_document, parse_rule_set
from tests.random_refs import random_customer_code, random_order_id

pytestmark = pytest.mark.adapters

NOW = datetime(2026, 11, 27, 8, 0, 0, 123456, tzinfo=UTC)
BEIJING = timezone(timedelta(hours=8))
LARGEST = Decimal("99999999999999.99")
CUSTOMER = "8800000001"


@pytest.fixture
def uow(engine: Engine) -> SqlUnitOfWork:
    return SqlUnitOfWork(engine)


def add_account(uow: SqlUnitOfWork, customer: str = "8800000001", group: str = "GA10", **kw) -> CreditAccount:  # type: ignore[no-untyped-def]
    with uow:
        uow.customers.add(customer, "Alpha", NOW)
        account = uow.accounts.add(
            CreditAccount(id=0, customer_code=customer, sale_group_code=group, created_at=NOW, **kw)
        )
        uow.commit()
    return account


def make_decision(
    uow: SqlUnitOfWork,
    account: CreditAccount,
    *,
    amount: str = "100.00",
    outcome: Outcome = Outcome.APPROVE,
    order_id: str | None = None,
    expires_at: datetime | None = None,
    decided_at: datetime = NOW,
) -> Decision:
    with uow:
        rule_set = uow.rule_sets.active()
    order_id = order_id or random_order_id("sql")
    order = Order(order_id, account.customer_code, account.sale_group_code, Decimal(amount), "web", {"n": 1})
    deferred = outcome is Outcome.DEFER
    decision = Decision(
        id=f"d-{order_id}",
        order=order,
        account_id=account.id,
        fingerprint=order.fingerprint(),
        outcome=outcome,
        reasons=(Reason("low", "BALANCE_LOW", "low"),),
        actions=("notify:balance.low",),
        balance=BalanceSnapshot(Decimal("1000.00"), NOW, "fake"),
        exposure=Decimal("0.00"),
        available=Decimal("1000.00"),
        credit_limit=Decimal("0.00"),
        credit_grade="A",
        shortfall=Decimal("0.01") if deferred else None,
        rule_set_id=rule_set.id,
        rule_set_version=rule_set.version,
        decided_at=decided_at,
        state=DecisionState.DEFERRED if deferred else DecisionState.DECIDED,
        facts={"order.amount": Decimal(amount), "balance.age_s": 3},
        deferral_expires_at=decided_at + timedelta(days=1) if deferred else None,
    )
    if outcome is Outcome.APPROVE:
        decision.hold = Hold(
            id=f"h{order_id.replace('-', '')}"[:32],
            account_id=account.id,
            order_id=order_id,
            decision_id=decision.id,
            amount=Decimal(amount),
            status=HoldStatus.OPEN,
            created_at=decided_at,
            expires_at=expires_at or decided_at + timedelta(days=7),
        )
    with uow:
        uow.decisions.add_new(decision)
        if decision.hold:
            uow.holds.add(decision.hold)
        uow.commit()
    return decision


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.utcoffset() == timedelta(0)
    assert value.tzinfo is UTC


class TestUnitOfWork:
    def test_rolls_back_uncommitted_work_by_default(self, uow: SqlUnitOfWork) -> None:
        with uow:
            uow.customers.add("8800000009", "", NOW)
        with uow:
            assert not uow.customers.exists("8800000009")

    def test_units_of_work_do_not_nest(self, uow: SqlUnitOfWork) -> None:
        with uow, pytest.raises(RuntimeError, match="units of work do not nest"), uow:
            pass

    def test_refuses_a_naive_datetime(self, uow: SqlUnitOfWork) -> None:
        with uow, pytest.raises(StatementError, match="naive datetime given to a UTC column"):
            uow.customers.add("8800000009", "", datetime(2026, 1, 1))


class TestCustomers:
    def test_adds_once_and_lists_codes(self, uow: SqlUnitOfWork) -> None:
        with uow:
            assert uow.customers.add("8800000002", "Beta", NOW) is True
            assert uow.customers.add("8800000001", "Alpha", NOW) is True
            assert uow.customers.add("8800000001", "Again", NOW) is False
            uow.commit()
        with uow:
            assert uow.customers.exists("8800000001")
            assert not uow.customers.exists("8800000003")
            assert uow.customers.codes() == ["8800000001", "8800000002"]


class TestAccounts:
    def test_round_trips_snapshot_params_status_and_exact_money(self, uow: SqlUnitOfWork) -> None:
        account = add_account(uow)
        assert account.id > 0
        account.snapshot = BalanceSnapshot(LARGEST, NOW.astimezone(BEIJING), "haier")
        account.exposure = LARGEST
        account.params = {"base_credit_limit": "500.00", "hold_ttl_s": 60}
        account.sale_group_name, account.payer_account_name = "空调", "海尔 Alpha"
        account.freeze(reason="BALANCE_DEPLETED", by="rule:depleted", now=NOW)
        with uow:
            uow.accounts.save(account)
            uow.commit()
        with uow:
            loaded = uow.accounts.get("8800000001", "GA10")
        assert loaded is not None
        assert loaded.snapshot == BalanceSnapshot(LARGEST, NOW, "haier")
        assert str(loaded.snapshot.amount) == "99999999999999.99"
        assert loaded.exposure == LARGEST
        assert loaded.params == {"base_credit_limit": "500.00", "hold_ttl_s": 60}
        assert (loaded.sale_group_name, loaded.payer_account_name) == ("空调", "海尔 Alpha")
        assert loaded.status is AccountStatus.FROZEN
        assert (loaded.frozen_reason, loaded.frozen_by, loaded.frozen_at) == (
            "BALANCE_DEPLETED",
            "rule:depleted",
            NOW,
        )
        assert_utc(loaded.snapshot.fetched_at)
        assert_utc(loaded.frozen_at)
        assert_utc(loaded.created_at)

    def test_a_new_account_has_no_snapshot_and_no_exposure(self, uow: SqlUnitOfWork) -> None:
        account = add_account(uow)
        assert account.snapshot is None
        assert account.exposure == Decimal("0.00")
        assert account.params == {}
        assert account.status is AccountStatus.ACTIVE

    def test_adding_an_existing_account_returns_the_stored_one(self, uow: SqlUnitOfWork) -> None:
        first = add_account(uow)
        with uow:
            again = uow.accounts.add(CreditAccount(id=0, customer_code="8800000001", sale_group_code="GA10"))
            uow.commit()
        assert again.id == first.id

    def test_lock_and_get_find_the_same_account_and_none_for_unknown(self, uow: SqlUnitOfWork) -> None:
        account = add_account(uow)
        with uow:
            locked = uow.accounts.lock("8800000001", "GA10")
            assert locked is not None and locked.id == account.id
            assert uow.accounts.lock("8800000001", "ZZ99") is None
            assert uow.accounts.get("8800000001", "ZZ99") is None

    def test_for_customer_lists_accounts_by_sale_group(self, uow: SqlUnitOfWork) -> None:
        add_account(uow, group="GB20")
        add_account(uow, group="GA10")
        add_account(uow, customer="8800000002", group="GA10")
        with uow:
            groups = [a.sale_group_code for a in uow.accounts.for_customer("8800000001")]
        assert groups == ["GA10", "GB20"]


class TestDecisions:
    def test_round_trips_a_decision_with_its_hold(self, uow: SqlUnitOfWork) -> None:
        account = add_account(uow)
        decision = make_decision(uow, account, amount="99999999999999.99")
        with uow:
            loaded = uow.decisions.get(decision.order.customer_code, decision.order_id)
        assert loaded is not None
        assert loaded.order == decision.order
        assert loaded.order.amount == LARGEST
        assert loaded.fingerprint == decision.order.fingerprint()
        assert (loaded.outcome, loaded.state) == (Outcome.APPROVE, DecisionState.DECIDED)
        assert loaded.reasons == decision.reasons
        assert loaded.actions == decision.actions
        assert loaded.balance == decision.balance
        assert loaded.facts == {"order.amount": "99999999999999.99", "balance.age_s": 3}  # exact, as text
        assert loaded.hold == decision.hold
        assert (loaded.available, loaded.shortfall, loaded.credit_limit) == (
            Decimal("1000.00"),
            None,
            Decimal("0"),
        )
        assert_utc(loaded.decided_at)
        assert loaded.hold is not None
        assert_utc(loaded.hold.expires_at)

    @pytest.mark.parametrize("batched", [False, True], ids=["at-once", "batched"])
    def test_a_taken_order_id_is_told_and_nothing_of_the_unit_is_kept(
        self, uow: SqlUnitOfWork, engine: Engine, batched: bool
    ) -> None:
        """At the insert, or (batched: the writes travel with the commit) from commit(); either way the
        writes queued with it are not kept."""
        account = add_account(uow)
        first = make_decision(uow, account, outcome=Outcome.BLOCK)
        other = make_decision(uow, account, outcome=Outcome.BLOCK)
        other.id, other.order = "d-another", first.order
        with uow.batched() if batched else uow, pytest.raises(OrderIdTaken):
            uow.decisions.add_new(other)
            uow.outbox.add(event_id="e-not-kept", topic="t", payload={}, now=first.decided_at)
            uow.commit()
        with uow:
            loaded = uow.decisions.get(first.order.customer_code, first.order_id)
        assert loaded is not None and loaded.id == first.id
        with engine.connect() as conn:
            assert conn.execute(select(outbox.c.id).where(outbox.c.id == "e-not-kept")).first() is None

    @pytest.mark.parametrize("batched", [False, True], ids=["at-once", "batched"])
    def test_a_decision_id_stored_already_is_refused_for_another_order(
        self, uow: SqlUnitOfWork, engine: Engine, batched: bool
    ) -> None:
        """The primary key: batched on PostgreSQL as a taken order id (the holder of the account's turn
        made this request's decision already), else an integrity error. The fake does the same."""
        account = add_account(uow)
        first = make_decision(uow, account, outcome=Outcome.BLOCK)
        again = copy.copy(first)
        again.order = replace(first.order, order_id=random_order_id("again"))
        told = OrderIdTaken if batched and engine.dialect.name == "postgresql" else IntegrityError
        with uow.batched() if batched else uow, pytest.raises(told):
            uow.decisions.add_new(again)
            uow.commit()
        with uow:
            assert uow.decisions.get(again.order.customer_code, again.order_id) is None

    def test_an_unknown_order_has_no_decision(self, uow: SqlUnitOfWork) -> None:
        with uow:
            assert uow.decisions.get(CUSTOMER, "nope") is None

    def test_update_stores_the_new_outcome_and_state(self, uow: SqlUnitOfWork) -> None:
        account = add_account(uow)
        decision = make_decision(uow, account, outcome=Outcome.DEFER)
        decision.outcome, decision.state, decision.rechecks = Outcome.BLOCK, DecisionState.EXPIRED, 2
        decision.reasons = (*decision.reasons, Reason("deferral", "DEFERRAL_EXPIRED", "late"))
        decision.shortfall = None
        with uow:
            uow.decisions.update(decision)
            uow.commit()
        with uow:
            loaded = uow.decisions.get(decision.order.customer_code, decision.order_id)
        assert loaded is not None
        assert (loaded.outcome, loaded.state, loaded.rechecks) == (Outcome.BLOCK, DecisionState.EXPIRED, 2)
        assert loaded.reasons[-1].reason == "DEFERRAL_EXPIRED"
        assert loaded.shortfall is None
        assert loaded.hold is None

    def test_deferred_lists_only_deferrals_due_by_the_given_time(self, uow: SqlUnitOfWork) -> None:
        account = add_account(uow)
        early = make_decision(uow, account, outcome=Outcome.DEFER, decided_at=NOW)
        late = make_decision(uow, account, outcome=Outcome.DEFER, decided_at=NOW + timedelta(hours=1))
        make_decision(uow, account, outcome=Outcome.BLOCK)
        with uow:
            assert uow.decisions.deferred() == [(CUSTOMER, early.order_id), (CUSTOMER, late.order_id)]
            assert uow.decisions.deferred(due_before=NOW + timedelta(days=1)) == [(CUSTOMER, early.order_id)]
            assert uow.decisions.deferred(limit=1) == [(CUSTOMER, early.order_id)]


class TestHolds:
    def test_expire_due_ends_open_holds_past_expiry_and_returns_their_exact_sum(
        self, uow: SqlUnitOfWork
    ) -> None:
        account = add_account(uow)
        due_a = make_decision(uow, account, amount="100.10", expires_at=NOW)
        due_b = make_decision(uow, account, amount="0.05", expires_at=NOW - timedelta(seconds=1))
        later = make_decision(uow, account, amount="7.00", expires_at=NOW + timedelta(seconds=1))
        with uow:
            assert uow.holds.accounts_with_due_holds(NOW) == [("8800000001", "GA10")]
            assert sum(e.amount for e in uow.holds.expire_due(account.id, NOW)) == Decimal("100.15")
            assert uow.holds.expire_due(account.id, NOW) == []  # each ends once
            uow.commit()
        with uow:
            assert [h.order_id for h in uow.holds.counting(account.id)] == [later.order_id]
            assert uow.holds.accounts_with_due_holds(NOW) == []
            for d in (due_a, due_b):
                hold = uow.decisions.get(d.order.customer_code, d.order_id).hold  # type: ignore[union-attr]
                assert hold is not None
                assert (hold.status, hold.counting, hold.ended_at) == (HoldStatus.EXPIRED, False, NOW)

    def test_expire_due_leaves_settled_and_released_holds_alone(self, uow: SqlUnitOfWork) -> None:
        account = add_account(uow)
        for status in (HoldStatus.SETTLED, HoldStatus.RELEASED):
            hold = make_decision(uow, account, expires_at=NOW).hold
            assert hold is not None
            hold.status, hold.ended_at, hold.counting = status, NOW, status is HoldStatus.SETTLED
            with uow:
                uow.holds.save(hold)
                uow.commit()
        with uow:
            assert uow.holds.expire_due(account.id, NOW + timedelta(days=1)) == []

    def test_stop_counting_settled_takes_only_settlements_before_the_balance(
        self, uow: SqlUnitOfWork
    ) -> None:
        account = add_account(uow)
        settled_at = {"1.01": NOW, "2.02": NOW + timedelta(seconds=1), "4.04": NOW + timedelta(seconds=2)}
        for amount, when in settled_at.items():
            hold = make_decision(uow, account, amount=amount).hold
            assert hold is not None
            with uow:
                uow.holds.add_settlement(hold.settle(None, None, part_id=f"part-{amount}", now=when))
                uow.holds.save(hold)
                uow.commit()
        make_decision(uow, account, amount="8.08")  # open: never touched here
        with uow:
            # a balance fetched at +1s includes the settlement at +0s only; the one at +1s may not be in it
            assert uow.holds.stop_counting_settled(account.id, NOW + timedelta(seconds=1)) == Decimal("1.01")
            assert uow.holds.stop_counting_settled(account.id, NOW + timedelta(seconds=1)) == Decimal("0.00")
            assert uow.holds.stop_counting_settled(account.id, NOW + timedelta(seconds=3)) == Decimal("6.06")
            uow.commit()
        with uow:
            counting = uow.holds.counting(account.id)
        assert [(h.amount, h.status) for h in counting] == [(Decimal("8.08"), HoldStatus.OPEN)]

    def test_holds_of_one_account_do_not_touch_another(self, uow: SqlUnitOfWork) -> None:
        first = add_account(uow, group="GA10")
        second = add_account(uow, group="GB20")
        make_decision(uow, first, expires_at=NOW)
        with uow:
            assert uow.holds.expire_due(second.id, NOW) == []
            assert len(uow.holds.counting(first.id)) == 1


def answer(customer: str, at: datetime, *groups: tuple[str, str]) -> BalanceReport:
    payers = tuple(PayerBalance(g, f"{g} name", "P1", "Alpha", Decimal(amount)) for g, amount in groups)
    return BalanceReport(customer, payers, at, "fake")


class TestBalanceReports:
    def test_keeps_the_answer_exactly_and_reads_it_back_in_utc(self, uow: SqlUnitOfWork) -> None:
        customer = random_customer_code()
        kept = answer(customer, NOW.astimezone(BEIJING), ("GA10", str(LARGEST)), ("GB20", "-0.01"))
        with uow:
            assert uow.balance_reports.latest(customer) is None
            uow.balance_reports.keep(kept)
            uow.commit()
        with uow:
            found = uow.balance_reports.latest(customer)
        assert found == kept
        assert found is not None
        assert_utc(found.fetched_at)
        assert [p.amount for p in found.accounts] == [LARGEST, Decimal("-0.01")]

    def test_an_older_or_equal_answer_never_replaces_a_newer_one(self, uow: SqlUnitOfWork) -> None:
        customer = random_customer_code()
        newer = answer(customer, NOW, ("GA10", "1.00"))
        with uow:
            uow.balance_reports.keep(newer)
            uow.balance_reports.keep(answer(customer, NOW - timedelta(seconds=1), ("GB20", "2.00")))
            uow.balance_reports.keep(answer(customer, NOW, ("GC30", "3.00")))
            uow.commit()
        with uow:
            assert uow.balance_reports.latest(customer) == newer
            uow.balance_reports.keep(answer(customer, NOW + timedelta(microseconds=1), ("GD40", "4.00")))
            uow.commit()
        with uow:
            found = uow.balance_reports.latest(customer)
        assert found is not None and [p.sale_group_code for p in found.accounts] == ["GD40"]

    def test_the_shared_provider_s_row_is_the_same_answer_and_its_lease_is_left_alone(
        self, uow: SqlUnitOfWork, engine: Engine
    ) -> None:
        customer = random_customer_code()
        shared = SqlSharedBalanceReports(engine)
        assert shared.try_lease(customer, "other", NOW, NOW + timedelta(seconds=30))
        with uow:
            assert uow.balance_reports.latest(customer) is None  # a row for the lease, no answer yet
            uow.balance_reports.keep(answer(customer, NOW, ("GA10", "1.00")))
            uow.commit()
        assert shared.try_lease(customer, "mine", NOW, NOW + timedelta(seconds=30)) is False  # still leased
        stored, _, _ = shared.latest(customer)
        assert stored == answer(customer, NOW, ("GA10", "1.00"))
        later = answer(customer, NOW + timedelta(seconds=5), ("GB20", "2.00"))
        shared.store(later, "other")
        with uow:
            assert uow.balance_reports.latest(customer) == later


class TestApiKeys:
    def test_finds_a_key_by_hash_until_revoked(self, uow: SqlUnitOfWork) -> None:
        secret = new_secret()
        with uow:
            uow.customers.add("8800000001", "", NOW)
            key = uow.api_keys.add(
                name="orders-a",
                role=Role.ORDERS,
                customers=frozenset({"8800000001"}),
                key_hash=hash_secret(secret),
                now=NOW,
            )
            uow.commit()
        with uow:
            found = uow.api_keys.by_hash(hash_secret(secret))
            assert uow.api_keys.by_hash(hash_secret(new_secret())) is None
        assert found == key
        assert found.customers == frozenset({"8800000001"})
        assert_utc(found.created_at)
        with uow:
            assert uow.api_keys.revoke(key.id, NOW) is True
            assert uow.api_keys.revoke(key.id, NOW) is False
            uow.commit()
        with uow:
            assert uow.api_keys.by_hash(hash_secret(secret)) is None
            revoked = uow.api_keys.by_hash(hash_secret(secret), include_revoked=True)
            [listed] = uow.api_keys.all()
        assert listed.revoked_at == NOW
        assert revoked == listed  # to say "revoked" in a 401 rather than "not valid"

    def test_an_unlimited_key_has_no_customer_list(self, uow: SqlUnitOfWork) -> None:
        with uow:
            uow.api_keys.add(name="admin", role=Role.ADMIN, customers=None, key_hash="a" * 64, now=NOW)
            uow.commit()
        with uow:
            key = uow.api_keys.by_hash("a" * 64)
        assert key is not None and key.customers is None and key.role is Role.ADMIN


class TestRuleSets:
    def test_the_migration_published_the_default_rule_set_as_version_one(self, uow: SqlUnitOfWork) -> None:
        with uow:
            active = uow.rule_sets.active()
        assert (active.version, active.name) == (1, "default")
        assert [r.id for r in active.rules.rules] == [r["id"] for r in default_rule_set_document()["rules"]]
        assert_utc(active.published_at)

    def test_publish_makes_the_next_version_active(self, uow: SqlUnitOfWork) -> None:
        document = default_rule_set_document()
        document["params"]["base_credit_limit"] = "250.00"
        with uow:
            published = uow.rule_sets.publish("tighter", document, NOW)
            assert uow.rule_sets.active() is published
            uow.commit()
        with uow:
            assert [v.version for v in uow.rule_sets.versions()] == [1, 2]
            assert uow.rule_sets.active().rules.params["base_credit_limit"] == Decimal("250.00")
        assert parse_rule_set(published.rules.document).params == published.rules.params

    def test_another_process_sees_a_new_version_once_its_cache_expires(self, engine: Engine) -> None:
        cached = RuleSetCache(ttl_s=3600)
        with SqlUnitOfWork(engine, rule_set_cache=cached) as reader:
            assert reader.rule_sets.active().version == 1
        with SqlUnitOfWork(engine) as writer:
            writer.rule_sets.publish("v2", default_rule_set_document(), NOW)
            writer.commit()
        with SqlUnitOfWork(engine, rule_set_cache=cached) as reader:
            assert reader.rule_sets.active().version == 1  # cached: a second per process in production
        with SqlUnitOfWork(engine, rule_set_cache=RuleSetCache(ttl_s=0)) as reader:
            assert reader.rule_sets.active().version == 2

    def test_a_rolled_back_publish_leaves_the_active_version(self, uow: SqlUnitOfWork) -> None:
        with uow:
            uow.rule_sets.publish("draft", default_rule_set_document(), NOW)
        with uow:
            assert uow.rule_sets.active().version == 1

    def test_compiled_versions_are_shared_by_id(self, engine: Engine) -> None:
        cache = RuleSetCache(ttl_s=0)
        with SqlUnitOfWork(engine, rule_set_cache=cache) as a:
            first = a.rule_sets.active()
        with SqlUnitOfWork(engine, rule_set_cache=cache) as b:
            assert b.rule_sets.active() is first


class TestOutbox:
    def test_stores_the_event_with_exact_json(self, uow: SqlUnitOfWork, engine: Engine) -> None:
        with uow:
            uow.outbox.add(
                event_id="e" * 32, topic="balance.low", payload={"available": Decimal("0.10")}, now=NOW
            )
            uow.commit()
        with engine.connect() as conn:
            row = conn.execute(select(outbox)).one()
        assert (row.topic, row.payload, row.dispatched_at) == ("balance.low", {"available": "0.10"}, None)
        assert_utc(row.created_at)


class TestRuleSetVersionsAndAssignments:
    def test_a_draft_has_no_version_and_is_never_the_default(self, uow: SqlUnitOfWork) -> None:
        with uow:
            draft = uow.rule_sets.add_draft("d", {"anything": True}, by="alice", now=NOW)
            uow.commit()
        with uow:
            assert uow.rule_sets.record(draft.id).version is None  # type: ignore[union-attr]
            assert uow.rule_sets.active().version == 1
            assert uow.rule_sets.published(draft.id) is None

    def test_a_version_effective_later_waits_for_the_database_clock(self, engine: Engine) -> None:
        with SqlUnitOfWork(engine, rule_set_cache=RuleSetCache(ttl_s=0)) as uow:
            later = uow.now() + timedelta(hours=1)
            uow.rule_sets.publish("later", default_rule_set_document(), NOW, effective_at=later)
            assert uow.rule_sets.active().version == 1
            uow.rollback()

    def test_the_account_assignment_beats_the_customer_one(self, engine: Engine) -> None:
        from creditctl.domain.rule_set import AssignedBy, Assignment

        with SqlUnitOfWork(engine, rule_set_cache=RuleSetCache(ttl_s=0)) as uow:
            second = uow.rule_sets.publish("v2", default_rule_set_document(), NOW)
            uow.rule_sets.assign(Assignment("8800000001", "", second.id, "alice", NOW, "risky"))
            assert uow.rule_sets.for_account("8800000001", "GA10").why is AssignedBy.CUSTOMER
            uow.rule_sets.assign(Assignment("8800000001", "GA10", 1, "alice", NOW, "exempt"))
            found = uow.rule_sets.for_account("8800000001", "GA10")
            assert (found.rule_set.version, found.why) == (1, AssignedBy.ACCOUNT)
            assert uow.rule_sets.for_account("8800000002", "GA10").why is AssignedBy.DEFAULT
            assert uow.rule_sets.unassign("8800000001", "GA10") is True
            assert uow.rule_sets.for_account("8800000001", "GA10").rule_set.version == 2
            uow.rollback()

    def test_pins_list_every_assignment_by_version_and_only_the_customers_asked_for(
        self, engine: Engine
    ) -> None:
        from creditctl.domain.rule_set import Assignment

        with SqlUnitOfWork(engine, rule_set_cache=RuleSetCache(ttl_s=0)) as uow:
            second = uow.rule_sets.publish("v2", default_rule_set_document(), NOW)
            uow.rule_sets.assign(Assignment("8800000002", "", 1, "alice", NOW, "stays on v1"))
            uow.rule_sets.assign(Assignment("8800000001", "GA10", 1, "bob", NOW, "exempt"))
            uow.rule_sets.assign(Assignment("8800000001", "GB20", second.id, "bob", NOW, "tighter"))
            pins = [(a.rule_set_id, a.customer_code, a.sale_group_code) for a in uow.rule_sets.pins()]
            assert pins == [
                (1, "8800000001", "GA10"),
                (1, "8800000002", ""),
                (second.id, "8800000001", "GB20"),
            ]
            mine = uow.rule_sets.pins(frozenset({"8800000002"}))
            assert [(a.rule_set_id, a.customer_code, a.assigned_by, a.reason) for a in mine] == [
                (1, "8800000002", "alice", "stays on v1")
            ]
            uow.rollback()

    def test_publications_racing_each_other_get_distinct_versions(self, engine: Engine) -> None:
        """Five administrators publish at the same moment: five new versions, none refused or lost."""
        import threading

        start, versions, errors = threading.Barrier(5), [], []

        def publish(i: int) -> None:
            try:
                start.wait(timeout=10)
                with SqlUnitOfWork(engine, rule_set_cache=RuleSetCache(ttl_s=0)) as uow:
                    versions.append(uow.rule_sets.publish(f"v{i}", default_rule_set_document(), NOW).version)
                    uow.commit()
            except Exception as exc:  # collected: the assertion below names it
                errors.append(exc)

        threads = [threading.Thread(target=publish, args=(i,)) for i in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        assert sorted(versions) == [2, 3, 4, 5, 6]


def _freeze(a: CreditAccount) -> None:
    a.freeze(reason="TEST", by="admin:alice", now=NOW)


def _approve(a: CreditAccount) -> None:
    a.exposure += Decimal("123.45")
    a.low_balance_alerted = True


def _snapshot(a: CreditAccount) -> None:
    a.snapshot = BalanceSnapshot(
        amount=Decimal("-0.01"), fetched_at=NOW + timedelta(seconds=1), source="haier"
    )
    a.sale_group_name, a.payer_account_code = "冰箱", "P-9"


def _profile(a: CreditAccount) -> None:
    a.params = {"hold_ttl_s": "7200"}
    a.payment = PaymentProfile(max_overdue_days=12, on_time_ratio=Decimal("0.8765"))
    a.credit.base_limit, a.credit.temporary_limit = Decimal("5000.00"), None
    a.credit.valid_until = NOW + timedelta(days=1)


def _nothing(a: CreditAccount) -> None:
    pass


class TestAccountSave:
    """save() writes only the columns that changed since the account was read in the unit: the row must
    be exactly what a write of every column gives."""

    @pytest.mark.parametrize("change", [_freeze, _approve, _snapshot, _profile, _nothing])
    def test_a_narrow_save_leaves_the_row_a_full_save_would(self, engine: Engine, change: object) -> None:
        def row_after(narrow: bool) -> dict[str, object]:
            uow = SqlUnitOfWork(engine)
            account = add_account(uow, customer=random_customer_code(), exposure=Decimal("10.00"))
            with uow:
                locked = uow.accounts.lock(account.customer_code, account.sale_group_code)
                assert locked is not None
                change(locked)  # type: ignore[operator]
                if not narrow:  # a repository that did not read it: every column is written
                    uow.accounts._stored.clear()
                uow.accounts.save(locked)
                uow.commit()
            with engine.connect() as conn:
                row = conn.execute(select(credit_accounts).where(credit_accounts.c.id == account.id)).one()
            skip = {"id", "customer_code", "updated_at", "created_at"}
            return {k: v for k, v in row._mapping.items() if k not in skip}

        assert row_after(narrow=True) == row_after(narrow=False)
