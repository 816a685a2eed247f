"""Orders for one account queue in the process before they queue on the database's row lock.

Thirty-two requests for one account in one process would otherwise be thirty-two connections waiting on
the account's row lock; at each commit PostgreSQL wakes every one of them to find the next holder (the
others go back to sleep), which costs the database more CPU than the decisions do. Here a process lets
one request per account at a time reach the database; the rest wait on a lock in the process, holding
no connection. The row lock still decides everything: across processes and instances, and whether or
not this queue is there (CREDITCTL_ACCOUNT_QUEUE=off turns it off).

A turn not given within WAIT_S is not waited for any longer: the request goes on to the row lock, as it
would without the queue. The holder may be stuck where the database has already given up on it (its
connection silently cut mid-exchange: no socket timeout notices, while the server ends the session and
frees the row); an unbounded wait in the process would then hold every later order for the account in
the process for as long as that thread is stuck, when the database would have let them through.

The holder may take the work of the callers waiting on its key (creditctl.ports.turns): they then wait
for its answer instead of the turn, WAIT_S again at most; past that they go on alone, as above. What
the holder does for them meanwhile, the database's locks and unique keys order against what they do,
and a decision made for them is still theirs (decide_order's ticket). An order handed back to be
decided alone waits for the turn once more: 3 * WAIT_S in all at most.
Whatever a holder took and did not answer is answered ALONE when its turn ends, so nobody waits on a
holder that failed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Any

from creditctl.ports.turns import ALONE

WAIT_S = 5.0  # a turn, or a holder's answer, waited for longer than this is gone without (see the module)
log = logging.getLogger("creditctl.account_queue")


class _Waiting:
    """A caller waiting on a key, with the work it brought (creditctl.ports.turns.Taken)."""

    __slots__ = ("answered", "item", "outcome", "taken")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.taken = False
        self.answered = threading.Event()
        self.outcome: Any = None

    def hand(self, outcome: Any) -> None:
        if not self.answered.is_set():
            self.outcome = outcome
            self.answered.set()


class _Key:
    """One key while anybody holds or waits for it."""

    __slots__ = ("changed", "held", "users", "waiting")

    def __init__(self, guard: threading.Lock) -> None:
        self.held = False
        self.users = 0  # callers holding or waiting
        self.waiting: list[_Waiting] = []  # those who brought work, in the order they came
        self.changed = threading.Condition(guard)  # the turn was let go, or someone's work was taken


class _Turn:
    """creditctl.ports.turns.Turn for one caller."""

    __slots__ = ("_holds", "_key", "_queue", "_took", "handed")

    def __init__(self, queue: AccountQueue, key: _Key, holds: bool, handed: Any) -> None:
        self.handed = handed
        self._queue, self._key, self._holds = queue, key, holds
        self._took: list[_Waiting] = []

    def take(self, limit: int) -> list[_Waiting]:
        if not self._holds or limit <= 0:
            return []
        with self._queue._guard:
            took, self._key.waiting = self._key.waiting[:limit], self._key.waiting[limit:]
            for w in took:
                w.taken = True
            if took:
                self._key.changed.notify_all()  # those taken now wait for the answer instead
        self._took += took
        return took

    def _end(self) -> None:
        for w in self._took:
            w.hand(ALONE)  # taken and not answered (the holder failed): they do it alone


class AccountQueue:
    """One turn per key while anybody holds or waits for it; forgotten when the last one leaves."""

    def __init__(self, wait_s: float = WAIT_S) -> None:
        self._wait_s = wait_s
        self._guard = threading.Lock()
        self._keys: dict[Hashable, _Key] = {}

    @contextmanager
    def turn(self, key: Hashable, item: Any = None) -> Iterator[_Turn]:
        """Wait for `key`'s turn (at most wait_s, then go on without it) and hold it for the block; or,
        bringing `item`, until the holder takes it and answers (at most wait_s again, then go on alone)."""
        me, holds = None, False
        with self._guard:
            entry = self._keys.get(key)
            if entry is None:
                entry = self._keys[key] = _Key(self._guard)
            entry.users += 1
        try:
            with self._guard:
                if entry.held:
                    me = _Waiting(item) if item is not None else None  # made only by those who wait
                    self._wait(entry, me)
                holds = not entry.held and not (me is not None and me.taken)
                if holds:
                    entry.held = True
            turn = _Turn(self, entry, holds, self._answer(key, me) if not holds else None)
            try:
                yield turn
            finally:
                turn._end()
        finally:
            with self._guard:
                if me is not None and me in entry.waiting:  # interrupted while waiting: not to be taken
                    entry.waiting.remove(me)
                if holds:
                    entry.held = False
                    entry.changed.notify_all()
                entry.users -= 1
                if entry.users == 0:
                    del self._keys[key]

    def _answer(self, key: Hashable, me: _Waiting | None) -> Any:
        """Without the turn: the holder's answer if it took `me` (at most wait_s), else None."""
        if me is not None and me.taken:
            if me.answered.wait(self._wait_s):
                return me.outcome
            log.warning("account %s: no answer within %.1f s, going on alone", key, self._wait_s)
        else:
            log.warning("account %s: no turn within %.1f s, going on to its row lock", key, self._wait_s)
        return None

    def _wait(self, entry: _Key, me: _Waiting | None) -> None:
        """Under the guard: wait until the turn is let go or `me` is taken, at most wait_s."""
        if me is not None:
            entry.waiting.append(me)
        deadline = time.monotonic() + self._wait_s
        while entry.held and not (me is not None and me.taken):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            entry.changed.wait(left)
        if me is not None and not me.taken:
            entry.waiting.remove(me)  # (an exception out of wait() leaves it to turn()'s finally)

    def __len__(self) -> int:
        """Keys held or waited for now."""
        with self._guard:
            return len(self._keys)
