"""The four decision outcomes and their order: the most severe matching rule wins."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """What a rule (and so a decision) says about an order; a StrEnum so it serialises as its value."""

    APPROVE = "approve"
    DEFER = "defer"
    BLOCK = "block"
    FREEZE = "freeze"

    @property
    def severity(self) -> int:
        """Rank for "most severe wins": approve 0 < defer 1 < block 2 < freeze 3."""
        return _SEVERITY[self]


_SEVERITY = {Outcome.APPROVE: 0, Outcome.DEFER: 1, Outcome.BLOCK: 2, Outcome.FREEZE: 3}
BY_SEVERITY: tuple[Outcome, ...] = tuple(sorted(Outcome, key=_SEVERITY.__getitem__))
