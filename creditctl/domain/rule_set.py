"""A published rule set version: the compiled rules plus the identity a decision records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from rules import RuleSet


@dataclass(frozen=True, slots=True)
class RuleSetVersion:
    """Immutable once published; decisions name it by id and version."""

    id: int
    version: int
    name: str
    rules: RuleSet
    published_at: datetime | None
    effective_at: datetime | None = None  # None: in effect since it was published

    def in_effect(self, now: datetime) -> bool:
        """Whether it decides at `now` (the database's time): from effective_at on, pinned or not."""
        return self.effective_at is None or self.effective_at <= now

    def __deepcopy__(self, memo: dict[int, object]) -> RuleSetVersion:
        return self  # immutable: a copy is the same version


class RuleSetStatus(StrEnum):
    DRAFT = "draft"  # editable, never used by a decision
    PUBLISHED = "published"  # immutable, its effective_at still ahead (scheduled)
    ACTIVE = "active"  # the global default now: the newest version in effect
    RETIRED = "retired"  # an older version a newer one replaced as the default (still assignable)


@dataclass(frozen=True, slots=True)
class RuleSetRecord:
    """A stored rule set, draft or published, with who made it, when and why."""

    id: int
    name: str
    version: int | None  # None for a draft
    document: dict[str, Any]
    created_at: datetime
    created_by: str
    updated_at: datetime
    published_at: datetime | None = None
    published_by: str | None = None
    reason: str | None = None
    effective_at: datetime | None = None
    rolled_back_from: int | None = None  # the version this one copies (rollback)
    revision: int = 1  # counts the row's changes: each edit, and the publication

    @property
    def is_draft(self) -> bool:
        return self.version is None

    @property
    def etag(self) -> str:
        """The entity tag of this revision (HTTP ETag / If-Match): the id and the revision, quoted."""
        return rule_set_etag(self.id, self.revision)

    def status(self, active_id: int | None, now: datetime) -> RuleSetStatus:
        """Where it stands at the database time `now`, given the id of the active version."""
        if self.version is None:
            return RuleSetStatus.DRAFT
        if self.id == active_id:
            return RuleSetStatus.ACTIVE
        if self.effective_at is not None and self.effective_at > now:
            return RuleSetStatus.PUBLISHED
        return RuleSetStatus.RETIRED


def rule_set_etag(rule_set_id: int, revision: int) -> str:
    return f'"{rule_set_id}.{revision}"'


class AssignedBy(StrEnum):
    """Why a rule set applies to an account (most specific first)."""

    ACCOUNT = "assigned to the account"
    CUSTOMER = "assigned to the customer"
    DEFAULT = "the global default"


@dataclass(frozen=True, slots=True)
class Assignment:
    """A published version pinned to a customer (sale_group_code "") or to one of its accounts."""

    customer_code: str
    sale_group_code: str
    rule_set_id: int
    assigned_by: str
    assigned_at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class ApplicableRuleSet:
    """The version that decides for an account, and why it is that one."""

    rule_set: RuleSetVersion
    why: AssignedBy
