"""The audit trail: its events in chain order (oldest first, newest last), filtered as GET
/v1/audit/events filters them and paged by chain position; and the chain's state, with a button that
verifies the whole chain. The chain is shared by every customer, so a key limited to some customers sees
only their events, and neither the head nor a verification (which reads every event)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import request

from adapters.web.audit import audit_page
from adapters.web.auth import check_role
from adapters.web.console.blueprint import NavItem, bp
from adapters.web.console.pages import DISPLAY_ZONE, page, parse_query
from adapters.web.context import ctx
from adapters.web.schemas.audit import AuditQuerySchema
from creditctl.domain.api_key import Role
from creditctl.domain.audit import ChainReport
from creditctl.services.audit import audit_head, verify_audit

READERS = (Role.AUDITOR, Role.ADMIN)
NAV_ITEMS = [NavItem("Audit trail", "console.audit", READERS)]
# Inside a web request (gunicorn gives a worker 30 s): a longer chain is verified in part, and the page
# says so and points to `creditctl audit verify`, which walks any length.
VERIFY_BUDGET_S = 15.0
VERIFY_BATCH = 1000  # seals read per query; the budget is checked between batches
FILTERS = ("customer_code", "sale_group_code", "order_id", "type", "actor", "from", "to")
PER_PAGE = 50


@bp.route("/audit")
def audit(report: ChainReport | None = None) -> Any:
    key = check_role(*READERS)
    shown = {k: v for k in (*FILTERS, "cursor") if (v := request.args.get(k, "").strip())}
    args = parse_query(AuditQuerySchema(), {k: _utc(k, v) for k, v in shown.items()})
    cursor = args.pop("cursor")
    args.pop("limit")
    events, next_cursor = audit_page(cursor, PER_PAGE, args)
    whole = key.customers is None
    shown.pop("cursor", None)
    return page(
        "audit.html",
        events=events,
        cursor=cursor,
        next_cursor=next_cursor,
        filters=shown,
        head=audit_head(uow=ctx().uow()) if whole else None,
        report=report,
        per_page=PER_PAGE,
        budget_s=VERIFY_BUDGET_S,
    )


@bp.route("/audit/verify", methods=["POST"])
def audit_verify() -> Any:
    """Walk the whole chain (seconds on a large one) and show the page with what was found."""
    check_role(*READERS, global_scope=True)
    return audit(report=verify_audit(uow=ctx().uow(), budget_s=VERIFY_BUDGET_S, batch=VERIFY_BATCH))


def _utc(name: str, value: str) -> str:
    """From and to are entered in Asia/Shanghai (as the console shows times): made UTC-aware for the
    API's schema. A value with its own offset keeps it; one that is no time is left for the schema."""
    if name not in ("from", "to"):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return (moment if moment.tzinfo else moment.replace(tzinfo=DISPLAY_ZONE)).isoformat()


@bp.app_template_filter("pretty_json")
def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False)
