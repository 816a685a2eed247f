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
the process for as long as that thread is stuck, when the database would have let them through."""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

WAIT_S = 5.0  # a turn waited for longer than this is gone without (see the module)
log = logging.getLogger("creditctl.account_queue")


class AccountQueue:
    """One lock per key while anybody holds or waits for it; forgotten when the last one leaves."""

    def __init__(self, wait_s: float = WAIT_S) -> None:
        self._wait_s = wait_s
        self._guard = threading.Lock()
        self._locks: dict[Hashable, list[object]] = {}  # key -> [its lock, how many hold or wait]

    @contextmanager
    def turn(self, key: Hashable) -> Iterator[None]:
        """Wait for `key`'s turn (at most wait_s, then go on without it), and hold it for the block."""
        with self._guard:
            entry = self._locks.get(key)
            if entry is None:
                entry = self._locks[key] = [threading.Lock(), 0]
            entry[1] += 1  # type: ignore[operator]
        lock: threading.Lock = entry[0]  # type: ignore[assignment]
        try:
            held = lock.acquire(timeout=self._wait_s)
            if not held:
                log.warning("account %s: no turn within %.1f s, going on to its row lock", key, self._wait_s)
            try:
                yield
            finally:
                if held:
                    lock.release()
        finally:
            with self._guard:
                entry[1] -= 1  # type: ignore[operator]
                if entry[1] == 0:
                    del self._locks[key]

    def __len__(self) -> int:
        """Keys held or waited for now."""
        with self._guard:
            return len(self._locks)
