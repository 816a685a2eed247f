"""The served application keeps the default rule set and the assignments young in a thread of its own:
decisions stop reading them (inside their account's lock) once a second, and still never use what was
read more than a second ago; a change made meanwhile in this process is not overwritten by an older read.

Real time, short TTLs; every wait is a poll with a generous limit, so a busy machine makes them slower,
not red."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, event

from adapters.sql import rule_sets as rule_sets_module
from adapters.sql.rule_sets import Assigned, RuleSetCache
from adapters.sql.unit_of_work import SqlUnitOfWork
from rules import default_rule_set_document

pytestmark = pytest.mark.adapters

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
LIMIT_S = 10.0


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
    """A refresher each of whose calls waits for the test's answer."""

    def __init__(self) -> None:
        self.pending: queue.Queue[Call] = queue.Queue()

    def __call__(self) -> tuple[int, Assigned]:
        call = Call()
        self.pending.put(call)
        assert call.ready.wait(LIMIT_S)
        return call.value

    def next_call(self) -> Call:
        return self.pending.get(timeout=LIMIT_S)


class TestTheCacheAlone:
    def test_without_a_refresher_an_entry_is_gone_after_its_ttl(self) -> None:
        cache = RuleSetCache(ttl_s=0.05)
        cache.remember_active(7)
        assert cache.active_id() == 7
        time.sleep(0.1)
        assert cache.active_id() is None

    def test_with_a_refresher_the_entries_stay_young_without_being_read_by_the_caller(self) -> None:
        refresher = Counting((7, {("8800000001", ""): 3}))
        cache = RuleSetCache(ttl_s=0.1, refresher=refresher)
        assert cache.active_id() is None  # nothing read yet: the caller reads, and the thread starts
        eventually(lambda: refresher.calls >= 3, "three refreshes")
        for _ in range(20):  # over 0.4 s, four TTLs: always young, never the caller's to read
            assert cache.active_id() == 7
            assert cache.assigned() == {("8800000001", ""): 3}
            time.sleep(0.02)

    def test_nothing_older_than_the_ttl_is_used_when_the_refresher_is_late(self) -> None:
        refresher = Counting((7, {}))
        cache = RuleSetCache(ttl_s=0.1, refresher=refresher)
        cache.active_id()
        eventually(lambda: cache.active_id() == 7, "a first refresh")
        refresher.gate = threading.Event()  # the next refresh hangs
        time.sleep(0.3)
        assert cache.active_id() is None  # the caller reads it itself, as without a refresher
        refresher.gate.set()

    def test_a_refresh_that_began_before_a_change_of_this_process_is_dropped(self) -> None:
        refresher = Scripted()
        cache = RuleSetCache(ttl_s=1.0, refresher=refresher)
        cache.remember_active(7)
        cache.active_id()  # the thread starts: its first read waits for an answer
        first = refresher.next_call()
        cache.forget_active()  # meanwhile this process publishes
        cache.remember_active(8)  # and reads the new default
        first.answer((7, {}))  # the refresh had read the old one
        second = refresher.next_call()  # the loop has finished with the first read
        assert cache.active_id() == 8
        assert cache.refreshes == 0
        second.answer((8, {}))
        eventually(lambda: cache.refreshes == 1, "the next refresh kept")
        assert cache.active_id() == 8

    def test_a_failing_refresher_leaves_the_read_to_the_caller_and_says_so_once(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        refresher = Counting((7, {}))
        refresher.fail = RuntimeError("database away")
        cache = RuleSetCache(ttl_s=0.05, refresher=refresher)
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
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(rule_sets_module, "IDLE_S", 0.2)
        refresher = Counting((7, {}))
        cache = RuleSetCache(ttl_s=0.1, refresher=refresher)
        cache.active_id()
        eventually(lambda: cache._refreshing is None, "the thread to stop after 0.2 s without a look")
        stopped = refresher.calls
        time.sleep(0.3)
        assert refresher.calls == stopped
        cache.active_id()
        eventually(lambda: refresher.calls > stopped, "a refresh after the next look")


class TestOnTheDatabase:
    def test_decisions_read_no_rule_sets_while_the_thread_keeps_them_young(self, engine: Engine) -> None:
        """Over eight TTLs, every read of rule_sets or rule_set_assignments after the first look is the
        refresh thread's; a version published meanwhile by another process is used within the TTL."""

        def refresher() -> tuple[int, Assigned]:
            with SqlUnitOfWork(engine, rule_set_cache=cache) as unit:
                return unit.rule_sets.current()

        cache = RuleSetCache(ttl_s=0.25, refresher=refresher)
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
            before = readers.count(threading.current_thread().name)
            published_at = time.monotonic()
            seen: list[int] = []
            while time.monotonic() - published_at < 8 * cache.ttl_s:
                with SqlUnitOfWork(engine, rule_set_cache=cache) as unit:
                    version = unit.rule_sets.for_account("8800000001", "GB20").rule_set.version
                if version == 2 and not seen:
                    seen.append(version)
                    assert time.monotonic() - published_at <= cache.ttl_s + 0.5
                time.sleep(0.01)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        assert seen == [2]
        assert readers.count(threading.current_thread().name) == before  # the decisions read none
        assert readers.count("rule-set-cache") >= 4
