"""The idempotency claim rides on the request's own commit (the fake unit of work keeps the same contract
as the SQL one): written with the first commit, refused when another request holds the key, forgotten
when the call fails, pruned after 24 hours."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.fake.clock import FakeClock
from adapters.fake.unit_of_work import FakeStore, FakeUnitOfWork
from creditctl.domain.idempotency import IdempotencyKeyTaken, StoredAnswer
from creditctl.ports.idempotency import claiming
from creditctl.services.idempotency import (
    forget_claim,
    keep_answer,
    open_claim,
    prune_idempotency_records,
    record_of,
)
from creditctl.services.rule_sets import create_draft
from rules import default_rule_set_document

pytestmark = pytest.mark.unit

ANSWER = StoredAnswer(201, '{"id": 2}', {"Content-Type": "application/json"})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def uow(clock: FakeClock) -> FakeUnitOfWork:
    uow = FakeUnitOfWork(FakeStore(), clock=clock)
    with uow:
        uow.rule_sets.publish("default", default_rule_set_document(), clock.now())
        uow.commit()
    return uow


def drafts(uow: FakeUnitOfWork) -> int:
    with uow:
        return len(uow.rule_sets.records())


def test_the_claim_is_committed_with_the_change_and_only_once(uow: FakeUnitOfWork) -> None:
    claim, found = open_claim("api-key:1", "POST /v1/rule-sets", "k", "f", uow=uow)
    assert found is None
    with claiming(claim):
        create_draft("a", {}, by="alice", uow=uow)
        create_draft("b", {}, by="alice", uow=uow)  # a second commit of the same request
    assert claim.written
    record = record_of(claim, uow=uow)
    assert record is not None and record.token == claim.token and record.answer is None
    keep_answer(claim, ANSWER, uow=uow)
    assert record_of(claim, uow=uow).answer == ANSWER  # type: ignore[union-attr]


def test_a_twin_whose_key_was_committed_first_commits_nothing(uow: FakeUnitOfWork) -> None:
    first, _ = open_claim("api-key:1", "POST /v1/rule-sets", "k", "f", uow=uow)
    twin, _ = open_claim("api-key:1", "POST /v1/rule-sets", "k", "f", uow=uow)  # looked up before
    with claiming(first):
        create_draft("a", {}, by="alice", uow=uow)
    before = drafts(uow)
    with claiming(twin), pytest.raises(IdempotencyKeyTaken):
        create_draft("a", {}, by="alice", uow=uow)
    assert drafts(uow) == before and not twin.written


def test_a_failed_call_forgets_its_claim_and_only_its_own(uow: FakeUnitOfWork) -> None:
    claim, _ = open_claim("api-key:1", "POST /v1/rule-sets", "k", "f", uow=uow)
    with claiming(claim):
        create_draft("a", {}, by="alice", uow=uow)
    other, _ = open_claim("api-key:1", "POST /v1/rule-sets", "k", "f", uow=uow)
    other.written = True  # another request's claim with the same key: not this record
    forget_claim(other, uow=uow)
    assert record_of(claim, uow=uow) is not None
    forget_claim(claim, uow=uow)
    assert record_of(claim, uow=uow) is None


def test_records_expire_after_24_hours_and_are_pruned(uow: FakeUnitOfWork, clock: FakeClock) -> None:
    claim, _ = open_claim("api-key:1", "POST /v1/rule-sets", "k", "f", uow=uow)
    keep_answer(claim, ANSWER, uow=uow)  # a call that committed nothing gets its record with the answer
    clock.advance(timedelta(hours=23, minutes=59).total_seconds())
    assert open_claim("api-key:1", "POST /v1/rule-sets", "k", "f", uow=uow)[1] is not None
    assert prune_idempotency_records(uow=uow) == 0
    clock.advance(60)
    assert prune_idempotency_records(uow=uow) == 1
    assert open_claim("api-key:1", "POST /v1/rule-sets", "k", "f", uow=uow)[1] is None
