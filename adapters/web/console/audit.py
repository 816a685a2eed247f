"""The audit trail: its events newest first (or in chain order, oldest first), filtered as GET
/v1/audit/events filters them and paged by chain position, with the filtered events as CSV or JSON lines;
and the chain's state, with a button that verifies the whole chain. The chain is shared by every customer,
so a key limited to some customers sees only their events, and neither the head nor a verification
(which reads every event)."""

from __future__ import annotations

import json
from datetime import datetime
from itertools import chain
from typing import Any

from flask import Response, request, stream_with_context

from adapters.web.auth import check_role, scope
from adapters.web.console.blueprint import NavItem, bp
from adapters.web.console.pages import DISPLAY_ZONE, page, parse_query
from adapters.web.context import ctx
from adapters.web.schemas.audit import AuditQuerySchema
from creditctl.domain.api_key import Role
from creditctl.domain.audit import AuditEvent, AuditQuery, ChainReport
from creditctl.services.audit import audit_head, list_audit_events, verify_audit
from creditctl.services.audit_export import audit_csv, audit_jsonl, iter_audit_events

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
    shown, args = _filters()
    cursor = args.pop("cursor")
    newest = request.args.get("order", "newest") != "oldest"
    events, next_cursor = _page(args, cursor, newest)
    whole = key.customers is None
    return page(
        "audit.html",
        events=events,
        cursor=cursor,
        next_cursor=next_cursor,
        filters=shown,
        order=None if newest else "oldest",
        newest=newest,
        head=audit_head(uow=ctx().uow()) if whole else None,
        report=report,
        per_page=PER_PAGE,
        budget_s=VERIFY_BUDGET_S,
    )


def _filters() -> tuple[dict[str, str], dict[str, Any]]:
    """The filters as entered (for the form and links, without the cursor) and as the API's schema
    reads them (with the cursor)."""
    shown = {k: v for k in (*FILTERS, "cursor") if (v := request.args.get(k, "").strip())}
    args = parse_query(AuditQuerySchema(), {k: _utc(k, v) for k, v in shown.items()})
    args.pop("limit")
    shown.pop("cursor", None)
    return shown, args


def _page(filters: dict[str, Any], cursor: int, newest: bool) -> tuple[list[AuditEvent], int | None]:
    """One page and the cursor of the next: newest first, the events before the cursor's position (from
    the head without one); oldest first, those after it. Paging is stable while events are appended."""
    if newest:
        q = AuditQuery(
            customers=scope(), limit=PER_PAGE, newest_first=True, before_position=cursor or None, **filters
        )
    else:
        q = AuditQuery(customers=scope(), limit=PER_PAGE, after_position=cursor, **filters)
    found = list_audit_events(q, uow=ctx().uow())
    return found, found[-1].position if len(found) == PER_PAGE else None


@bp.route("/audit/export")
def audit_export() -> Any:
    """Every event matching the page's filters (not only the page shown), in chain order, streamed as
    CSV or as JSON lines (the lines `creditctl audit export` writes, each verifiable by its hash)."""
    check_role(*READERS)
    fmt = request.args.get("format", "csv")
    _, args = _filters()
    args.pop("cursor")  # the whole filter, not the page shown
    c = ctx()  # sealed on the primary, read from the replica when one is set (an export tolerates lag)
    events = iter_audit_events(AuditQuery(customers=scope(), **args), uow=c.uow(), read_uow=c.reading_uow())
    first = next(events, None)  # a customer the key may not see is refused (404) before the stream starts
    rows = events if first is None else chain((first,), events)
    if fmt == "jsonl":
        body, mimetype = audit_jsonl(rows), "application/jsonl"
    else:
        body, mimetype = audit_csv(rows), "text/csv"
    name = f"audit-events.{'jsonl' if fmt == 'jsonl' else 'csv'}"
    return Response(
        stream_with_context(body),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
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
