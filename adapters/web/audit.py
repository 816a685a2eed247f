"""/v1/audit: the tamper-evident trail of every state change, for auditors and administrators."""

from __future__ import annotations

from typing import Any

from adapters.web.auth import requires, scope
from adapters.web.blueprint import ApiBlueprint
from adapters.web.context import ctx
from adapters.web.schemas.audit import AuditPageSchema, AuditQuerySchema
from creditctl.domain.api_key import Role
from creditctl.domain.audit import AuditEvent, AuditQuery
from creditctl.services.audit import list_audit_events

bp = ApiBlueprint(
    "audit",
    __name__,
    url_prefix="/v1/audit",
    description="The audit trail: one event per state change, linked in a SHA-256 hash chain.",
)


@bp.route("/events", methods=["GET"])
@requires(Role.AUDITOR, Role.ADMIN)
@bp.arguments(AuditQuerySchema(), location="query", as_kwargs=True)
@bp.response(200, AuditPageSchema)
@bp.alt_response(404, description="A customer the key may not see (a key limited to other customers)")
def events(cursor: int, limit: int, **filters: Any) -> dict[str, Any]:
    """Events in chain order, filtered, a page at a time (`next_cursor`).

    A key limited to customers sees only events about its customers (no global ones: keys, configs,
    rule sets). Paging is stable while events are added: the cursor is a chain position, and new
    events are only ever appended after the last one."""
    found, next_cursor = audit_page(cursor, limit, filters)
    return {"events": found, "next_cursor": next_cursor, "limit": limit}


def audit_page(cursor: int, limit: int, filters: dict[str, Any]) -> tuple[list[AuditEvent], int | None]:
    """One page of events as the caller's key may see them, and the next page's cursor (None: the last).
    The console's audit page reads the trail with this too."""
    q = AuditQuery(customers=scope(), after_position=cursor, limit=limit, **filters)
    found = list_audit_events(q, uow=ctx().uow())
    return found, found[-1].position if len(found) == limit else None
