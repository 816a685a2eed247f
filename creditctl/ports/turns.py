"""Turns: a process's callers with the same key go one at a time, and the one whose turn it is may take
what the others waiting brought and do it for them.

Why: orders for one account are decided under its row lock, one transaction after another. Callers of
one process that wait for the same account can instead be decided by whoever holds the turn, in one
transaction (one lock, one commit): what a payments ledger does with a hot account. An optimisation of
the process only: the database's locks still decide, across processes and instances.

An implementation: adapters.sql.account_queue.AccountQueue. NO_TURNS, below, is the null one."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

# What a holder hands back to a caller whose work it took and could not do (its transaction failed):
# the caller does it alone. Never an exception: the caller's own attempt raises its own.
ALONE = "alone"


class Taken(Protocol):
    """A waiting caller's work, taken by the holder: `item` is what it brought; `hand` answers it."""

    item: Any

    def hand(self, outcome: Any) -> None: ...


class Turn(Protocol):
    """What a caller has once `turn` lets it go on.

    `handed`: None if the caller's work is its own to do (it holds the turn, or waited past the wait's
    bound without it); else what the holder that took it handed back (a result, or ALONE).
    `take(limit)`: the holder only: up to `limit` waiting callers' work, theirs to hand back to. A
    holder's turn ends by handing ALONE to any it took and did not answer."""

    handed: Any

    def take(self, limit: int) -> list[Taken]: ...


class Turns(Protocol):
    def turn(self, key: Hashable, item: Any = None) -> AbstractContextManager[Turn]:
        """Wait for `key`'s turn, or until the holder takes `item` (None: never taken) and answers."""
        ...


class _Own:
    handed: Any = None

    def take(self, limit: int) -> list[Taken]:
        return []


class _NoTurns:
    """Every caller goes on at once and does its own work (the fake unit of work; turns switched off)."""

    @contextmanager
    def turn(self, key: Hashable, item: Any = None) -> Iterator[Turn]:
        yield _Own()


NO_TURNS: Turns = _NoTurns()
