"""The served application keeps the default rule set and the assignments young in a thread of its own:
decisions stop reading them (inside their account's lock) once a second, and still never use what was
read more than a second ago; a change this process makes is never undone by a refresh that read before it
committed, and a refresh never replaces what a decision read after it began.

Real time: each check that needs the thread on time leaves it half a TTL of slack (TTL 1 s), and every
wait is a poll with a generous limit, so a busy machine makes these slower, not red."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, event

from adapters.bootstrap import Settings, bootstrap
from adapters.sql import rule_sets as rule_sets_module
from adapters.sql.rule_sets import Assigned, RuleSetCache
from adapters.sql.unit_of_work import SqlUnitOfWork
from rules import default_rule_set_document

pytestmark = pytest.mark.adapters

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
LIMIT_S = 10.0
Caches = Callable[..., RuleSetCache]


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + LIMIT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {LIMIT_S} s: {what}")
        time.sleep(0.01)


class Counting:
    """A refresher that answers `value` and counts its calls; `gate` (when set) holds each call."""

    def __init__(self, value: tuple[int, Assigned]) -> None:
        self.value = value
        self.calls = 0
        self.gate: threading.Event | None = None
        self.fail: Exception | None = None

    def __call__(self) -> tuple[int, Assigned]:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(LIMIT_S)
        if self.fail is not None:
            raise self.fail
        return self.value


class Call:
    def __init__(self) -> None:
        self.ready = threading.Event()
        self.value: tuple[int, Assigned] = (0, {})

    def answer(self, value: tuple[int, Assigned]) -> None:
        self.value = value
        self.ready.set()


class Scripted:
    """A refresher each of whose calls waits for the test's answer (closed: answered at once)."""

    def __init__(self) -> None:
        self.pending: queue.Queue[Call] = queue.Queue()
        self.closed = threading.Event()

    def __call__(self) -> tuple[int, Assigned]:
        call = Call()
        self.pending.put(call)
        while not call.ready.wait(0.05):
            if self.closed.is_set():
                raise RuntimeError("the test is over")
        return call.value

    def next_call(self) -> Call:
        return self.pending.get(timeout=LIMIT_S)


@pytest.fixture
def caches() -> Iterator[Caches]:
    """RuleSetCache(...), each stopped (and its scripted refresher closed) when the test ends."""
    made: list[RuleSetCache] = []

    def make(*args: object, **kwargs: object) -> RuleSetCache:
        made.append(RuleSetCache(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for cache in made:
        cache.stop()
        refresher = cache._refresher
        if isinstance(refresher, Scripted):
            refresher.closed.set()
        if isinstance(refresher, Counting) and refresher.gate is not None:
            refresher.gate.set()
    for cache in made:
        eventually(lambda c=cache: c._refreshing is None, "the refresh thread to stop")


class TestTheCacheAlone:
    def test_without_a_refresher_an_entry_is_gone_after_its_ttl(self, caches: Caches) -> None:
        cache = caches(ttl_s=0.05)
        cache.remember_active(7)
        assert cache.active_id() == 7
        time.sleep(0.1)
        assert cache.active_id() is None

    def test_with_a_refresher_the_entries_stay_young_without_being_read_by_the_caller(
        self, caches: Caches
    ) -> None:
        refresher = Counting((7, {("8800000001", ""): 3}))
        cache = caches(ttl_s=1.0, refresher=refresher)
        assert cache.active_id() is None  # nothing read yet: the caller reads, and the thread starts
        eventually(lambda: refresher.calls >= 1, "a first refresh")
        for _ in range(25):  # over 2.5 s, two and a half TTLs: always young, never the caller's to read
            assert cache.active_id() == 7
            assert cache.assigned() == {("8800000001", ""): 3}
            time.sleep(0.1)
        assert refresher.calls >= 4

    def test_nothing_older_than_the_ttl_is_used_when_the_refresher_is_late(self, caches: Caches) -> None:
        refresher = Counting((7, {}))
        cache = caches(ttl_s=0.1, refresher=refresher)
        cache.active_id()
        eventually(lambda: cache.active_id() == 7, "a first refresh")
        refresher.gate = threading.Event()  # the next refresh hangs
        time.sleep(0.4)
        assert cache.active_id() is None  # the caller reads it itself, as without a refresher

    def test_a_refresh_that_began_before_a_change_of_this_process_is_dropped(self, caches: Caches) -> None:
        refresher = Scripted()
        cache = caches(ttl_s=1.0, refresher=refresher)
        cache.remember_active(7)
        cache.remember_assigned({("8800000001", ""): 7})
        cache.active_id()  # the thread starts: its first read waits for an answer
        first = refresher.next_call()
        cache.forget()  # meanwhile this process publishes a version and pins an account
        cache.remember_active(8)  # and reads both again
        cache.remember_assigned({("8800000001", ""): 8})
        first.answer((7, {("8800000001", ""): 7}))  # the refresh had read the old state
        second = refresher.next_call()  # the loop is done with the first read
        assert (cache.active_id(), cache.assigned()) == (8, {("8800000001", ""): 8})
        assert cache.refreshes == 0
        second.answer((8, {("8800000001", ""): 8}))
        eventually(lambda: cache.refreshes == 1, "the next refresh kept")

    def test_a_refresh_never_replaces_what_a_decision_read_after_it_began(self, caches: Caches) -> None:
        refresher = Scripted()
        cache = caches(ttl_s=1.0, refresher=refresher)
        cache.active_id()
        slow = refresher.next_call()  # began: read v1 (another process then publishes v2)
        cache.remember_active(2)  # a decision found the entry empty and read v2 itself
        slow.answer((1, {}))
        refresher.next_call().answer((2, {}))
        eventually(lambda: cache.refreshes >= 1, "a refresh kept")
        assert cache.active_id() == 2

    def test_a_failing_refresher_leaves_the_read_to_the_caller_and_says_so_once(
        self, caches: Caches, caplog: pytest.LogCaptureFixture
    ) -> None:
        refresher = Counting((7, {}))
        refresher.fail = RuntimeError("database away")
        cache = caches(ttl_s=0.05, refresher=refresher)
        with caplog.at_level(logging.WARNING, logger=rule_sets_module.__name__):
            cache.remember_active(7)
            cache.active_id()
            eventually(lambda: refresher.calls >= 4, "four failed refreshes")
            assert cache.active_id() is None
            refresher.fail = None
            eventually(lambda: cache.active_id() == 7, "a refresh once it works again")
        failed = [r for r in caplog.records if "failed" in r.getMessage()]
        again = [r for r in caplog.records if "works again" in r.getMessage()]
        assert len(failed) == 1 and "database away" in failed[0].getMessage()
        assert len(again) == 1

    def test_an_idle_process_stops_refreshing_and_its_next_look_starts_again(
        self, caches: Caches, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(rule_sets_module, "IDLE_S", 0.2)
        refresher = Counting((7, {}))
        cache = caches(ttl_s=0.1, refresher=refresher)
        cache.active_id()
        eventually(lambda: cache._refreshing is None, "the thread to stop after 0.2 s without a look")
        stopped = refresher.calls
        time.sleep(0.3)
        assert refresher.calls == stopped
        cache.active_id()
        eventually(lambda: refresher.calls > stopped, "a refresh after the next look")


class TestOnTheDatabase:
    def test_decisions_read_no_rule_sets_while_the_thread_keeps_them_young(
        self, engine: Engine, caches: Caches
    ) -> None:
        """Over three TTLs, every read of rule_sets or rule_set_assignments after the first look is the
        refresh thread's; a version another process publishes is used within the TTL, and never the older
        one after it."""

        def refresher() -> tuple[int, Assigned]:
            with SqlUnitOfWork(engine, rule_set_cache=cache) as unit:
                return unit.rule_sets.current()

        cache = caches(ttl_s=1.0, refresher=refresher)
        readers: list[str] = []

        def record(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
            if "FROM rule_set" in statement:
                readers.append(threading.current_thread().name)

        event.listen(engine, "before_cursor_execute", record)
        try:
            with SqlUnitOfWork(engine, rule_set_cache=cache) as unit:
                assert unit.rule_sets.for_account("8800000001", "GB20").rule_set.version == 1
            eventually(lambda: cache.refreshes >= 2, "two refreshes")
            with SqlUnitOfWork(engine) as writer:  # another process (its own cache) publishes
                writer.rule_sets.publish("v2", default_rule_set_document(), NOW)
                writer.commit()
            published_at = time.monotonic()
            before = readers.count(threading.current_thread().name)
            seen: list[tuple[int, float]] = []
            while time.monotonic() - published_at < 3 * cache.ttl_s:
                with SqlUnitOfWork(engine, rule_set_cache=cache) as unit:
                    version = unit.rule_sets.for_account("8800000001", "GB20").rule_set.version
                seen.append((version, time.monotonic() - published_at))
                time.sleep(0.02)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        versions = [v for v, _ in seen]
        first_new = versions.index(2)
        assert set(versions[first_new:]) == {2}  # never the older one once the new one was used
        assert seen[first_new][1] <= cache.ttl_s + 0.5
        assert readers.count(threading.current_thread().name) == before  # the decisions read none
        assert readers.count("rule-set-cache") >= 4

    def test_a_refresh_that_read_before_this_process_committed_its_publication_is_dropped(
        self, engine: Engine, caches: Caches
    ) -> None:
        refresher = Scripted()
        cache = caches(ttl_s=1.0, refresher=refresher)
        with SqlUnitOfWork(engine, rule_set_cache=cache) as unit:  # version 1 compiled; the thread starts
            old = unit.rule_sets.active()
        refresher.next_call().answer((old.id, {}))
        eventually(lambda: cache.refreshes == 1, "a first refresh")
        with SqlUnitOfWork(engine, rule_set_cache=cache) as admin:
            published = admin.rule_sets.publish("v2", default_rule_set_document(), NOW)
            during = refresher.next_call()  # a refresh begins after the publication, before its commit
            during.answer((old.id, {}))  # and reads the committed default: still version 1
            eventually(lambda: cache.refreshes == 2, "that refresh kept (nothing new was forgotten)")
            admin.commit()  # forgets what that refresh read
        with SqlUnitOfWork(engine, rule_set_cache=cache) as unit:
            assert unit.rule_sets.active().id == published.id

    def test_a_publication_rolled_back_leaves_nothing_of_itself_in_the_cache(self, engine: Engine) -> None:
        """The unit that publishes reads its own version (the publish answer lists it as the default);
        if it then rolls back, this process must not go on deciding with a version that never was."""
        cache = RuleSetCache(ttl_s=3600)
        with SqlUnitOfWork(engine, rule_set_cache=cache) as admin:
            draft = admin.rule_sets.publish("never", default_rule_set_document(), NOW)
            assert admin.rule_sets.active().id == draft.id  # its own change, uncommitted
            assert cache.active_id() is None  # not the process's: another thread decides on version 1
        with SqlUnitOfWork(engine, rule_set_cache=cache) as unit:
            assert unit.rule_sets.active().version == 1
        with SqlUnitOfWork(engine, rule_set_cache=cache) as admin:
            admin.rule_sets.publish("never either", default_rule_set_document(), NOW)
            assert admin.rule_sets.active().version == 2
            admin.rollback()
            assert admin.rule_sets.active().version == 1


class TestWhoRefreshes:
    @pytest.mark.parametrize("refresh, expected", [(False, False), (True, True)])
    def test_the_served_application_on_postgresql_refreshes_and_nothing_else_does(
        self, postgres_engine: Engine, sqlite_engine: Engine, tmp_path: Path, refresh: bool, expected: bool
    ) -> None:
        for engine, refreshing in ((postgres_engine, expected), (sqlite_engine, False)):
            settings = Settings(instance_path=tmp_path / engine.dialect.name, database_url=str(engine.url))
            context = bootstrap(settings, engine=engine, refresh_rule_sets=refresh)
            with context.uow() as unit:
                cache = unit._cache  # type: ignore[attr-defined]
            assert (cache._refresher is not None) is refreshing, engine.dialect.name
            cache.stop()
