"""The audit trail on fakes: one event per state change, in its transaction; sealed, verified, read."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from adapters.fake.audit import FakeAuditLog
from adapters.fake.clock import FakeClock
from adapters.fake.unit_of_work import FakeStore, FakeUnitOfWork
from creditctl.domain.audit import Actor, AuditQuery, SealerMark, SealHorizon
from creditctl.services.audit import list_audit_events, seal_audit, seal_audit_outcome, verify_audit
from creditctl.services.expiry import sweep
from creditctl.services.freeze_account import freeze_account
from creditctl.services.resolve_hold import settle_order
from tests.keys import key
from tests.unit.services.conftest import CUSTOMER, GROUP, OTHER_CUSTOMER, Desk

pytestmark = pytest.mark.unit
BOB = Actor(name="bob", role="admin", request_id="r-9")


def types(uow: FakeUnitOfWork, **filters: object) -> list[str]:
    return [e.data["type"] for e in list_audit_events(AuditQuery(limit=1000, **filters), uow=uow)]  # type: ignore[arg-type]


class TestAuditOnFakes:
    def test_a_decision_appends_one_event_and_a_replay_none(self, desk: Desk, uow: FakeUnitOfWork) -> None:
        order = desk.order("10.00")
        desk.decide_result(order)
        desk.decide_result(order)
        assert types(uow, order_id=order.order_id) == ["decision.made"]

    def test_a_refused_change_appends_nothing(
        self, desk: Desk, uow: FakeUnitOfWork, store: FakeStore
    ) -> None:
        with pytest.raises(Exception, match="reason"):
            freeze_account(CUSTOMER, GROUP, reason=" ", who=key("bob"), uow=uow, actor=BOB)
        assert types(uow, type="account.frozen") == []

    def test_freeze_settle_and_expiry_are_recorded_with_their_actor(
        self, desk: Desk, uow: FakeUnitOfWork, clock: FakeClock
    ) -> None:
        settled, expiring = desk.decide("10.00"), desk.decide("20.00")
        settle_order(settled.order_id, scope=None, uow=uow, actor=BOB)
        freeze_account(CUSTOMER, GROUP, reason="dispute", who=key("bob"), uow=uow, actor=BOB)
        clock.advance(timedelta(days=30).total_seconds())
        sweep(uow=uow)
        events = list_audit_events(AuditQuery(customer_code=CUSTOMER, limit=1000), uow=uow)
        by_type = {e.data["type"]: e.data for e in events}
        assert by_type["hold.settled"]["actor"] == {"name": "bob", "role": "admin"}
        assert by_type["hold.settled"]["request_id"] == "r-9"
        assert by_type["account.frozen"]["after"]["status"] == "frozen"
        expired = [e.data for e in events if e.data["type"] == "hold.expired"]
        assert [e["subject"]["order_id"] for e in expired] == [expiring.order_id]  # one event per hold
        assert expired[0]["actor"]["name"] == "creditctl"
        assert expired[0]["after"]["expired_amount"] == "20.00"

    def test_sealed_chain_verifies_and_a_limited_reader_sees_its_customers_only(
        self, desk: Desk, uow: FakeUnitOfWork
    ) -> None:
        desk.decide("1.00")
        desk.decide(
            "1.00", customer=OTHER_CUSTOMER
        ) if "customer" in desk.order.__code__.co_varnames else None
        assert seal_audit(uow=uow) >= 1
        report = verify_audit(uow=uow)
        assert report.ok and report.unsealed == 0
        seen = list_audit_events(AuditQuery(customers=frozenset({OTHER_CUSTOMER}), limit=1000), uow=uow)
        assert seen and all(e.data["subject"]["customer_code"] == OTHER_CUSTOMER for e in seen)

    def test_newest_first_reads_down_from_the_head(self, desk: Desk, uow: FakeUnitOfWork) -> None:
        for _ in range(4):
            desk.decide("1.00")
        oldest_first = [e.position for e in list_audit_events(AuditQuery(limit=1000), uow=uow)]
        newest = list_audit_events(AuditQuery(limit=2, newest_first=True), uow=uow)
        assert [e.position for e in newest] == oldest_first[::-1][:2]
        older = AuditQuery(limit=1000, newest_first=True, before_position=newest[-1].position)
        assert [e.position for e in list_audit_events(older, uow=uow)] == oldest_first[::-1][2:]


def write(uow: FakeUnitOfWork, n: int, *, at: datetime | None = None) -> None:
    with uow:
        for i in range(n):
            uow.audit.append("test.written", at=at or uow.now(), actor=BOB, subject={"n": i})
        uow.commit()


def last_seq(uow: FakeUnitOfWork) -> int:
    with uow:
        return uow.audit.seal_horizon().seq


def mark(uow: FakeUnitOfWork) -> int:
    with uow:
        return uow.audit.sealer_mark().seq


class TestTheSealersMark:
    """A pass reads above the mark, so its cost follows what was written since the last passes. The
    mark moves to a horizon an earlier pass stored, once it has settled before a pass reads."""

    def test_a_pass_reads_above_the_mark_and_the_mark_follows_one_pass_behind(
        self, uow: FakeUnitOfWork, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        seal_audit(uow=uow)  # stores a horizon
        seal_audit(uow=uow)  # it settled: the mark moves to it
        assert mark(uow) == last_seq(uow) > 0
        reads: list[int] = []
        real = FakeAuditLog.unsealed

        def spy(self: FakeAuditLog, *, after_seq: int, limit: int) -> Any:
            reads.append(after_seq)
            return real(self, after_seq=after_seq, limit=limit)

        monkeypatch.setattr(FakeAuditLog, "unsealed", spy)
        before = mark(uow)
        write(uow, 3)
        assert seal_audit(uow=uow) == 3
        assert reads == [before]  # one read, above the mark
        assert mark(uow) == before  # the horizon it moved to was read before these three
        write(uow, 2)
        assert seal_audit(uow=uow) == 2
        assert reads == [before, before]
        assert mark(uow) == before + 3  # the horizon the last pass stored
        reads.clear()
        assert seal_audit(uow=uow, full=True) == 0  # from the start: `audit seal --from-start`
        assert reads == [0]

    def test_between_pages_is_called_after_each_committed_page_that_another_may_follow(
        self, uow: FakeUnitOfWork
    ) -> None:
        """The worker's sealer rests there (adapters/cli/webhooks.py): nothing of the pass is held then,
        and what came before is committed."""
        seal_audit(uow=uow)
        write(uow, 7)
        unsealed_then: list[int] = []
        outcome = seal_audit_outcome(
            uow=uow, batch=3, between_pages=lambda: unsealed_then.append(verify_audit(uow=uow).unsealed)
        )
        assert outcome.sealed == 7
        assert unsealed_then == [4, 1]  # after pages of 3 and 3; not after the last (1)
        assert verify_audit(uow=uow).unsealed == 0
        write(uow, 2)
        assert (
            seal_audit_outcome(uow=uow, batch=3, between_pages=lambda: unsealed_then.append(-1)).sealed == 2
        )
        assert unsealed_then == [4, 1]  # one page: no call

    def test_a_horizon_that_has_not_settled_is_kept_and_the_mark_waits_for_it(
        self, uow: FakeUnitOfWork, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        seal_audit(uow=uow)
        seal_audit(uow=uow)
        before = mark(uow)
        monkeypatch.setattr(FakeAuditLog, "horizon_settled", lambda self, horizon: False)
        write(uow, 2)
        assert seal_audit(uow=uow) == 2
        with uow:
            kept = uow.audit.sealer_mark().horizon
        write(uow, 1)
        assert seal_audit(uow=uow) == 1  # read from the old mark: nothing sealed twice
        with uow:
            assert uow.audit.sealer_mark() == SealerMark(before, kept)  # neither moved nor replaced
        monkeypatch.undo()
        assert seal_audit(uow=uow) == 0
        assert kept is not None and mark(uow) == kept.seq
        assert verify_audit(uow=uow).unsealed == 0

    def test_a_mark_above_every_seq_is_ignored_and_set_back(self, uow: FakeUnitOfWork) -> None:
        """A mark moved up by hand would hide every later event from the passes."""
        seal_audit(uow=uow)
        seal_audit(uow=uow)
        with uow:
            uow.audit.save_sealer_mark(10**9, uow.audit.seal_horizon())
            uow.commit()
        write(uow, 2)
        assert seal_audit(uow=uow) == 2  # read from the start
        assert mark(uow) <= last_seq(uow)
        write(uow, 1)
        assert seal_audit(uow=uow) == 1
        assert verify_audit(uow=uow).unsealed == 0

    def test_a_refused_event_is_reported_and_once_below_the_mark_left_for_verify_to_name(
        self, uow: FakeUnitOfWork, clock: FakeClock
    ) -> None:
        write(uow, 1)
        seal_audit(uow=uow)
        write(uow, 1, at=clock.now() - timedelta(hours=1))  # held back an hour: older than the chain
        outcome = seal_audit_outcome(uow=uow)
        assert outcome.sealed == 0 and len(outcome.refused) == 1
        held = outcome.refused[0].seq
        seal_audit(uow=uow)
        assert mark(uow) >= held  # every seq up to the mark sealed or refused
        assert seal_audit_outcome(uow=uow).refused == []  # not read again...
        report = verify_audit(uow=uow)  # ...but verify, which does not use the mark, names it
        assert report.unsealed == 1 and [r[0] for r in report.refused] == [held]

    def test_a_stored_horizon_that_cannot_settle_or_was_never_read_is_replaced(
        self, uow: FakeUnitOfWork
    ) -> None:
        """One that names no writers because the database could not tell (a sequence that caches) would
        be kept for ever; one above every seq handed out was set by hand. Neither moves the mark."""
        seal_audit(uow=uow)
        seal_audit(uow=uow)
        before = mark(uow)
        for stored in (SealHorizon(before, pending=None), SealHorizon(10**9)):
            with uow:
                uow.audit.save_sealer_mark(None, stored)
                uow.commit()
            write(uow, 1)
            assert seal_audit(uow=uow) == 1
            newest = last_seq(uow)
            with uow:
                assert uow.audit.sealer_mark().horizon == SealHorizon(newest)  # replaced
            assert mark(uow) == before  # not moved to it
            seal_audit(uow=uow)
            before = mark(uow)
            assert before == last_seq(uow)
