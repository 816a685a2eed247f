"""A published rule set version: the compiled rules plus the identity a decision records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rules import RuleSet


@dataclass(frozen=True, slots=True)
class RuleSetVersion:
    """Immutable once published; decisions name it by id and version."""

    id: int
    version: int
    name: str
    rules: RuleSet
    published_at: datetime | None

    def __deepcopy__(self, memo: dict[int, object]) -> RuleSetVersion:
        return self  # immutable: a copy is the same version
