"""/v1/rule-sets: rule sets as versioned data (admin writes, auditors read), diff and simulation."""

from __future__ import annotations

from typing import Any

from adapters.web import backtests
from adapters.web.auth import actor, current_key, requires, requires_global_admin, scope
from adapters.web.blueprint import ApiBlueprint
from adapters.web.context import ctx
from adapters.web.schemas.backtests import BacktestSchema, PeriodRequestSchema
from adapters.web.schemas.rule_sets import (
    DiffQuerySchema,
    DiffSchema,
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
@requires_global_admin
@bp.arguments(DraftSchema)
@bp.response(201, RuleSetDetailSchema, description="The new draft")
def create(body: dict[str, Any]) -> RuleSetListing:
    """Start a draft (with a document, or a copy of the active set's to edit). Any JSON object is kept;
    validate or publish it to see its problems."""
    return service.create_draft(body["name"], body["document"], by=current_key().name, uow=ctx().uow())


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
@bp.response(200, RuleSetDetailSchema)
@bp.alt_response(404, description=NOT_FOUND)
def read(rule_set_id: int) -> RuleSetListing:
    """One draft or version with its document."""
    return service.get_rule_set(rule_set_id, uow=ctx().uow())


@bp.route("/<int(max=2147483647):rule_set_id>", methods=["PUT"])
@requires_global_admin
@bp.arguments(DraftSchema)
@bp.response(200, RuleSetDetailSchema)
@bp.alt_response(404, description=NOT_FOUND)
@bp.alt_response(409, description="Published: a version never changes; start a new draft")
def replace(body: dict[str, Any], rule_set_id: int) -> RuleSetListing:
    """Replace a draft's name and document."""
    document = body["document"] if body["document"] is not None else {}
    return service.update_draft(rule_set_id, body["name"], document, uow=ctx().uow())


@bp.route("/<int(max=2147483647):rule_set_id>/validate", methods=["POST"])
@requires(*READERS)
@bp.response(200, ValidationSchema)
@bp.alt_response(404, description=NOT_FOUND)
def validate(rule_set_id: int) -> dict[str, Any]:
    """Every problem of the document, each with its JSON pointer (valid: no problems)."""
    problems = service.validate_rule_set(rule_set_id, uow=ctx().uow())
    return {"valid": not problems, "errors": [{"pointer": p, "message": m} for p, m in problems]}


@bp.route("/<int(max=2147483647):rule_set_id>/publish", methods=["POST"])
@requires_global_admin
@bp.arguments(PublishSchema)
@bp.response(200, RuleSetDetailSchema)
@bp.alt_response(404, description=NOT_FOUND)
@bp.alt_response(409, description="Already published")
@bp.alt_response(422, description="The document has problems: errors maps each JSON pointer to messages")
def publish(body: dict[str, Any], rule_set_id: int) -> RuleSetListing:
    """Publish a draft as version n+1 (immutable from then on), recording who and why; it becomes the
    default at effective_at (database clock) or at once."""
    return service.publish_rule_set(
        rule_set_id,
        reason=body["reason"],
        effective_at=body["effective_at"],
        by=current_key().name,
        uow=ctx().uow(),
        actor=actor(),
    )


@bp.route("/<int(max=2147483647):rule_set_id>/rollback", methods=["POST"])
@requires_global_admin
@bp.arguments(RollbackSchema)
@bp.response(201, RuleSetDetailSchema, description="The new version: a copy of the one rolled back to")
@bp.alt_response(404, description=NOT_FOUND)
@bp.alt_response(409, description="A draft cannot be rolled back to")
def rollback(body: dict[str, Any], rule_set_id: int) -> RuleSetListing:
    """Publish a copy of this older version as version n+1, the default at once."""
    return service.rollback_rule_set(
        rule_set_id, reason=body["reason"], by=current_key().name, uow=ctx().uow(), actor=actor()
    )


@bp.route("/<int(max=2147483647):rule_set_id>/backtest", methods=["POST"])
@requires_global_admin
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
