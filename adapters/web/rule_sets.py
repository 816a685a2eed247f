"""/v1/rule-sets: rule sets as versioned data (admin writes, auditors read), diff and simulation."""

from __future__ import annotations

from typing import Any

from adapters.web import backtests
from adapters.web.auth import actor, current_key, requires, requires_act, requires_global_admin, scope
from adapters.web.blueprint import ApiBlueprint
from adapters.web.context import ctx
from adapters.web.idempotency import idempotent
from adapters.web.preconditions import conditional, etagged, if_match_tags
from adapters.web.schemas.backtests import BacktestSchema, PeriodRequestSchema
from adapters.web.schemas.rule_sets import (
    DiffQuerySchema,
    DiffSchema,
    DraftReplacementSchema,
    DraftSchema,
    PublishSchema,
    RollbackSchema,
    RuleSetDetailSchema,
    RuleSetListSchema,
    SimulateSchema,
    SimulationSchema,
    ValidationSchema,
    dump_simulation,
)
from creditctl.domain.account import PaymentProfile
from creditctl.domain.api_key import Role
from creditctl.domain.authority import Act
from creditctl.domain.decision import Order
from creditctl.domain.errors import InvalidRequest
from creditctl.services import rule_sets as service
from creditctl.services.rule_sets import RuleSetListing
from creditctl.services.simulate_order import HypotheticalAccount, simulate_with_rule_set

bp = ApiBlueprint(
    "rule_sets",
    __name__,
    url_prefix="/v1/rule-sets",
    description="Credit rule sets: drafts, validation, publication, rollback, diff and simulation.",
)
READERS = (Role.ADMIN, Role.AUDITOR)
NOT_FOUND = "No rule set with this id"


@bp.route("", methods=["GET"])
@requires(*READERS)
@bp.response(200, RuleSetListSchema)
def index() -> dict[str, Any]:
    """Every draft and version: id, name, version (null for drafts), status, who, when and why."""
    return {"rule_sets": service.list_rule_sets(uow=ctx().uow())}


@bp.route("", methods=["POST"])
@requires_act(Act.CHANGE_RULE_SETS)
@idempotent()
@etagged
@bp.arguments(DraftSchema)
@bp.response(201, RuleSetDetailSchema, description="The new draft")
def create(body: dict[str, Any]) -> Tagged:
    """Start a draft (with a document, or a copy of the active set's to edit). Any JSON object is kept;
    validate or publish it to see its problems."""
    return _tagged(
        service.create_draft(body["name"], body["document"], by=current_key().name, uow=ctx().uow())
    )


@bp.route("/diff", methods=["GET"])
@requires(*READERS)
@bp.arguments(DiffQuerySchema, location="query")
@bp.response(200, DiffSchema)
@bp.alt_response(404, description=NOT_FOUND)
def diff(query: dict[str, Any]) -> dict[str, Any]:
    """What changed from one rule set to another, both given by id (drafts have no version)."""
    return service.diff_rule_sets(query["from_"], query["to"], uow=ctx().uow())


@bp.route("/<int(max=2147483647):rule_set_id>", methods=["GET"])
@requires(*READERS)
@etagged
@bp.response(200, RuleSetDetailSchema)
@bp.alt_response(404, description=NOT_FOUND)
def read(rule_set_id: int) -> Tagged:
    """One draft or version with its document; the ETag names its revision (send it as If-Match)."""
    return _tagged(service.get_rule_set(rule_set_id, uow=ctx().uow()))


@bp.route("/<int(max=2147483647):rule_set_id>", methods=["PUT"])
@requires_act(Act.CHANGE_RULE_SETS)
@conditional
@bp.arguments(DraftReplacementSchema)
@bp.response(200, RuleSetDetailSchema)
@bp.alt_response(404, description=NOT_FOUND)
@bp.alt_response(
    409,
    description="Published: a version never changes (errors.version names it), start a new draft; or, "
    "without If-Match, changed by another call at the same time (nothing written; errors.etag)",
)
def replace(body: dict[str, Any], rule_set_id: int) -> Tagged:
    """Replace a draft's name and document. With If-Match (the ETag of the revision you edited), only if
    nobody changed it since (else 412); without, it is still never written over a change committed at
    the same time (409)."""
    return _tagged(
        service.update_draft(
            rule_set_id, body["name"], body["document"], uow=ctx().uow(), if_revision=_if_match(rule_set_id)
        )
    )


@bp.route("/<int(max=2147483647):rule_set_id>/validate", methods=["POST"])
@requires(*READERS)
@bp.response(200, ValidationSchema)
@bp.alt_response(404, description=NOT_FOUND)
def validate(rule_set_id: int) -> dict[str, Any]:
    """Every problem of the document, each with its JSON pointer (valid: no problems)."""
    problems = service.validate_rule_set(rule_set_id, uow=ctx().uow())
    return {"valid": not problems, "errors": [{"pointer": p, "message": m} for p, m in problems]}


@bp.route("/<int(max=2147483647):rule_set_id>/publish", methods=["POST"])
@requires_act(Act.CHANGE_RULE_SETS)
@idempotent()
@conditional
@bp.arguments(PublishSchema)
@bp.response(200, RuleSetDetailSchema)
@bp.alt_response(404, description=NOT_FOUND)
@bp.alt_response(
    409,
    description="Already published (errors.version names the version; a retry with the same "
    "Idempotency-Key gets the first answer instead), or, without If-Match, edited at the same time",
)
@bp.alt_response(422, description="The document has problems: errors maps each JSON pointer to messages")
def publish(body: dict[str, Any], rule_set_id: int) -> Tagged:
    """Publish a draft as version n+1 (immutable from then on), recording who and why; it becomes the
    default at effective_at (database clock) or at once. Exactly the revision read is published (with
    If-Match: the one you name); of two publications at once, one wins and the other gets 409."""
    return _tagged(
        service.publish_rule_set(
            rule_set_id,
            reason=body["reason"],
            effective_at=body["effective_at"],
            by=current_key().name,
            uow=ctx().uow(),
            actor=actor(),
            if_revision=_if_match(rule_set_id),
        )
    )


@bp.route("/<int(max=2147483647):rule_set_id>/rollback", methods=["POST"])
@requires_act(Act.CHANGE_RULE_SETS)
@idempotent()
@etagged
@bp.arguments(RollbackSchema)
@bp.response(201, RuleSetDetailSchema, description="The new version: a copy of the one rolled back to")
@bp.alt_response(404, description=NOT_FOUND)
@bp.alt_response(409, description="A draft cannot be rolled back to")
def rollback(body: dict[str, Any], rule_set_id: int) -> Tagged:
    """Publish a copy of this older version as version n+1, the default at once (send an
    Idempotency-Key: a retry then answers the same version instead of making another)."""
    return _tagged(
        service.rollback_rule_set(
            rule_set_id, reason=body["reason"], by=current_key().name, uow=ctx().uow(), actor=actor()
        )
    )


@bp.route("/<int(max=2147483647):rule_set_id>/backtest", methods=["POST"])
@requires_global_admin
@idempotent()
@bp.arguments(PeriodRequestSchema())
@bp.response(202, BacktestSchema, description=backtests.QUEUED, headers=backtests.LOCATION)
@bp.alt_response(404, description=NOT_FOUND)
@bp.alt_response(422, description="The rule set has problems (errors by JSON pointer), or an empty period")
def backtest(body: dict[str, Any], rule_set_id: int) -> Any:
    """Queue a replay of the stored decisions of a period under this rule set (typically a draft); answers
    at once. The run (GET /v1/backtests/{id}) shows its progress, then counts by outcome and money approved
    before and after; its changed orders are at GET /v1/backtests/{id}/changes (paged or ?format=csv)."""
    return backtests.enqueue_for_rule_set(rule_set_id, body["start"], body["end"])


@bp.route("/<int(max=2147483647):rule_set_id>/simulate", methods=["POST"])
@requires(*READERS)
@bp.arguments(SimulateSchema)
@bp.response(200, SimulationSchema)
@bp.alt_response(404, description="No such rule set, customer or account")
@bp.alt_response(422, description="The rule set has problems, or neither customer_code nor account was given")
def simulate(body: dict[str, Any], rule_set_id: int) -> dict[str, Any]:
    """One hypothetical order on a real account or a hypothetical one: outcome and full trace; nothing
    is written."""
    account = _hypothetical(body["account"]) if body["account"] is not None else None
    if account is None and not body["customer_code"]:
        raise InvalidRequest("name a real account (customer_code) or describe one (account)", field="account")
    order = Order(
        "simulation",
        body["customer_code"] or "hypothetical",
        body["sale_group_code"],
        body["amount"],
        body["channel"],
    )
    sim = simulate_with_rule_set(rule_set_id, order, account, scope=scope(), uow=ctx().uow())
    return dump_simulation(sim)


Tagged = tuple[RuleSetListing, dict[str, str]]


def _tagged(listing: RuleSetListing) -> Tagged:
    """The answer with the revision's ETag header."""
    return listing, {"ETag": listing.record.etag}


def _if_match(rule_set_id: int) -> frozenset[int] | None:
    """The revisions If-Match names for this rule set (None: no condition; empty: none of its own)."""
    tags = if_match_tags()
    if tags is None:
        return None
    revisions = set()
    for tag in tags:
        owner, _, revision = tag.partition(".")
        if owner == str(rule_set_id) and revision.isascii() and revision.isdigit():
            revisions.add(int(revision))
    return frozenset(revisions)


def _hypothetical(spec: dict[str, Any]) -> HypotheticalAccount:
    payment = spec["payment"] or {}
    profile = PaymentProfile(
        max_overdue_days=payment.get("max_overdue_days", 0),
        on_time_ratio=payment.get("on_time_ratio") or PaymentProfile().on_time_ratio,
        overdue_amount=payment.get("overdue_amount", PaymentProfile().overdue_amount),
    )
    return HypotheticalAccount(
        balance=spec["balance"],
        balance_age_s=spec["balance_age_s"],
        exposure=spec["exposure"],
        params=spec["params"],
        payment=profile,
        frozen=spec["frozen"],
        age_days=spec["age_days"],
    )
