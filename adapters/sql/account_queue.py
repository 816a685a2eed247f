"""Orders for one account queue in the process before they queue on the database's row lock.

Thirty-two requests for one account in one process would otherwise be thirty-two connections waiting on
the account's row lock; at each commit PostgreSQL wakes every one of them to find the next holder (the
others go back to sleep), which costs the database more CPU than the decisions do. Here a process lets
one request per account at a time reach the database; the rest wait on a lock in the process, holding
no connection. The row lock still decides everything: across processes and instances, and whether or
not this queue is there (CREDITCTL_ACCOUNT_QUEUE=off turns it off)."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager


class AccountQueue:
    """One lock per key while anybody holds or waits for it; forgotten when the last one leaves."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Hashable, list[object]] = {}  # key -> [its lock, how many hold or wait]

    @contextmanager
    def turn(self, key: Hashable) -> Iterator[None]:
        """Wait for `key`'s turn, and hold it for the block."""
        with self._guard:
            entry = self._locks.get(key)
            if entry is None:
                entry = self._locks[key] = [threading.Lock(), 0]
            entry[1] += 1  # type: ignore[operator]
        lock: threading.Lock = entry[0]  # type: ignore[assignment]
        try:
            with lock:
                yield
        finally:
            with self._guard:
                entry[1] -= 1  # type: ignore[operator]
                if entry[1] == 0:
                    del self._locks[key]

    def __len__(self) -> int:
        """Keys held or waited for now."""
        with self._guard:
            return len(self._locks)
