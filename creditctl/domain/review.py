"""The review record of a deferred order: what a person did with it, who, why, and the facts then."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from creditctl.domain.api_key import ApiKey
from creditctl.domain.decision import Decision, Reason


def released_reason(key: ApiKey, why: str) -> Reason:
    return Reason(rule="review", reason="RELEASED_IN_REVIEW", message=f"Released by {key.name}: {why}")


def rejected_reason(key: ApiKey, why: str) -> Reason:
    return Reason(rule="review", reason="REJECTED_IN_REVIEW", message=f"Rejected by {key.name}: {why}")


def review_entry(
    action: str,
    *,
    key: ApiKey,
    reason: str | None,
    at: datetime,
    outcome_before: str,
    after: Decision,
    facts: dict[str, Any],
) -> dict[str, Any]:
    """One entry: action (release, reject, recheck), who (key name, role, approval limit), why, when,
    the outcome before and after, and the facts at that moment (money as decimal strings)."""
    return {
        "action": action,
        "by": key.name,
        "owner": key.owner,
        "role": key.role.value,
        "approval_limit": None if key.approval_limit is None else str(key.approval_limit),
        "reason": reason,
        "at": at.isoformat(),
        "outcome_before": outcome_before,
        "outcome_after": after.outcome.value,
        "state_after": after.state.value,
        "facts": {k: _plain(v) for k, v in facts.items()},
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value
