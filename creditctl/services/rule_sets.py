"""Rule sets as versioned data: drafts, validation, publication (scheduled or now), rollback, diff."""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from creditctl.domain.audit import SYSTEM, Actor, canonical_json
from creditctl.domain.errors import (
    CreditctlError,
    RuleSetChanged,
    RuleSetIsDraft,
    RuleSetNotDraft,
    RuleSetRefused,
    StaleRuleSet,
    UnknownRuleSet,
)
from creditctl.domain.rule_set import RuleSetRecord, RuleSetStatus
from creditctl.ports.unit_of_work import UnitOfWork
from rules import RuleSet, RuleSetInvalid, diff_documents, parse_rule_set


@dataclass(frozen=True, slots=True)
class RuleSetListing:
    """A stored rule set and where it stands now (by the database's clock)."""

    record: RuleSetRecord
    status: RuleSetStatus


def list_rule_sets(*, uow: UnitOfWork) -> list[RuleSetListing]:
    """Every draft and version, oldest first."""
    with uow:
        active, now = uow.rule_sets.active().id, uow.now()
        return [RuleSetListing(r, r.status(active, now)) for r in uow.rule_sets.records()]


def get_rule_set(rule_set_id: int, *, uow: UnitOfWork) -> RuleSetListing:
    """One draft or version."""
    with uow:
        return _listing(uow, _record(uow, rule_set_id))


def create_draft(name: str, document: dict[str, Any] | None, *, by: str, uow: UnitOfWork) -> RuleSetListing:
    """A new editable draft: the document given, or a copy of the active version's to edit."""
    with uow:
        body = document if document is not None else uow.rule_sets.active().rules.document
        record = uow.rule_sets.add_draft(name, body, by=by, now=uow.now())
        uow.commit()
        return _listing(uow, record)


def update_draft(
    rule_set_id: int,
    name: str,
    document: dict[str, Any],
    *,
    uow: UnitOfWork,
    if_revision: Collection[int] | None = None,
) -> RuleSetListing:
    """Replace a draft; a published version never changes (RuleSetNotDraft).

    `if_revision` (the caller's If-Match): only while the draft is at one of these revisions, else
    StaleRuleSet. With or without it, the write is conditional on the revision read here, in the same
    transaction: an edit or a publication another call committed in between changes no row here, and is
    reported (RuleSetNotDraft, StaleRuleSet, RuleSetChanged), never overwritten."""
    with uow:
        record = _draft(uow, rule_set_id, if_revision)
        if not uow.rule_sets.update_draft(rule_set_id, name, document, uow.now(), revision=record.revision):
            raise _lost_race(uow, rule_set_id, if_revision)
        uow.commit()
        return _listing(uow, _record(uow, rule_set_id))


def validate_rule_set(rule_set_id: int, *, uow: UnitOfWork) -> list[tuple[str, str]]:
    """Every problem of the stored document as (JSON pointer, message); empty when it is valid."""
    with uow:
        record = _record(uow, rule_set_id)
    return problems_of(record.document)


def problems_of(document: Any) -> list[tuple[str, str]]:
    """Every problem of a document as (JSON pointer, message)."""
    try:
        parse_rule_set(document)
    except RuleSetInvalid as exc:
        return [(p.pointer, p.message) for p in exc.errors]
    return []


def compile_document(document: Any) -> RuleSet:
    """The compiled rule set, or RuleSetRefused naming every problem with its pointer."""
    try:
        return parse_rule_set(document)
    except RuleSetInvalid as exc:
        raise RuleSetRefused([(p.pointer, p.message) for p in exc.errors]) from None


def publish_rule_set(
    rule_set_id: int,
    *,
    reason: str,
    effective_at: datetime | None,
    by: str,
    uow: UnitOfWork,
    actor: Actor = SYSTEM,
    if_revision: Collection[int] | None = None,
) -> RuleSetListing:
    """Publish a draft as version n+1, immutable from then on; the default from effective_at (or now).

    Exactly the revision read here is published: of two publications (or a publication and an edit) at
    once, the conditional UPDATE lets one change the row; the other changes none and is refused
    (RuleSetNotDraft naming the version, or StaleRuleSet / RuleSetChanged), with no event of its own."""
    with uow:
        record = _draft(uow, rule_set_id, if_revision)
        compiled = compile_document(record.document)
        now = uow.now()
        when = effective_at if effective_at is not None and effective_at > now else None
        done = uow.rule_sets.publish_draft(
            rule_set_id,
            compiled.document,
            now,
            by=by,
            reason=reason,
            effective_at=when,
            revision=record.revision,
        )
        if done is None:
            raise _lost_race(uow, rule_set_id, if_revision)
        published = _record(uow, rule_set_id)
        uow.audit.append(
            "rule_set.published",
            at=now,
            actor=actor,
            subject={"rule_set_id": rule_set_id, "version": published.version},
            after={"name": published.name, "reason": reason, "effective_at": when, **_digest(published)},
        )
        uow.commit()
        return _listing(uow, _record(uow, rule_set_id))


def rollback_rule_set(
    rule_set_id: int, *, reason: str, by: str, uow: UnitOfWork, actor: Actor = SYSTEM
) -> RuleSetListing:
    """Publish a copy of an older version as version n+1, in effect now."""
    with uow:
        record = _record(uow, rule_set_id)
        if record.version is None:
            raise RuleSetIsDraft(rule_set_id)
        compile_document(record.document)  # one published before the params had bounds may break them
        now = uow.now()
        published = uow.rule_sets.publish(
            record.name, record.document, now, by=by, reason=reason, rolled_back_from=record.version
        )
        uow.audit.append(
            "rule_set.rolled_back",
            at=now,
            actor=actor,
            subject={"rule_set_id": published.id, "version": published.version},
            before={"version": record.version},
            after={"name": record.name, "reason": reason, **_digest(record)},
        )
        uow.commit()
        return _listing(uow, _record(uow, published.id))


def diff_rule_sets(from_id: int, to_id: int, *, uow: UnitOfWork) -> dict[str, Any]:
    """Rules and params added, removed and changed from one rule set (draft or version) to another."""
    with uow:
        before, after = _record(uow, from_id), _record(uow, to_id)
    return diff_documents(before.document, after.document)


def _digest(record: RuleSetRecord) -> dict[str, str]:
    """The document by its digest: the audit event stays small, the version row holds the text."""
    return {"document_sha256": hashlib.sha256(canonical_json(record.document).encode()).hexdigest()}


def _record(uow: UnitOfWork, rule_set_id: int) -> RuleSetRecord:
    found = uow.rule_sets.record(rule_set_id)
    if found is None:
        raise UnknownRuleSet(f"with id {rule_set_id}")
    return found


def _draft(uow: UnitOfWork, rule_set_id: int, if_revision: Collection[int] | None) -> RuleSetRecord:
    """The draft as read now, if it is one (and at a revision the caller named, if it named any)."""
    record = _record(uow, rule_set_id)
    if record.version is not None:
        raise RuleSetNotDraft(rule_set_id, record.version)
    if if_revision is not None and record.revision not in if_revision:
        raise StaleRuleSet(rule_set_id, record.etag)
    return record


def _lost_race(uow: UnitOfWork, rule_set_id: int, if_revision: Collection[int] | None) -> CreditctlError:
    """Why a conditional write changed no row: what another transaction committed since the read."""
    now = _record(uow, rule_set_id)
    if now.version is not None:
        return RuleSetNotDraft(rule_set_id, now.version)
    if if_revision is not None:
        return StaleRuleSet(rule_set_id, now.etag)
    return RuleSetChanged(rule_set_id, now.etag)


def _listing(uow: UnitOfWork, record: RuleSetRecord) -> RuleSetListing:
    return RuleSetListing(record, record.status(uow.rule_sets.active().id, uow.now()))
