"""A freeze of an account, kept once lifted: who froze it, when and why; how, by whom and when it ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class LiftedHow(StrEnum):
    MANUAL = "manual"  # an administrator unfroze the account
    RULE = "rule"  # the rule set's auto_unfreeze condition held (only for a freeze the rules made)
    REPLACED = "replaced"  # an administrator's freeze took over a freeze the rules made


@dataclass(frozen=True, slots=True)
class Freeze:
    id: int
    account_id: int
    reason: str
    frozen_by: str  # "admin:<key name>" or "rule:<rule id>"
    frozen_at: datetime
    lifted_at: datetime | None = None
    lifted_by: str | None = None
    lifted_how: LiftedHow | None = None
    lift_reason: str | None = None

    @property
    def by_rule(self) -> bool:
        return self.frozen_by.startswith("rule:")
