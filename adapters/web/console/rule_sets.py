"""The rule set editor: list; a draft's JSON in a textarea, its problems at their JSON pointer (and
line); simulate one order; backtest a period; publish; roll back. Reading needs admin or auditor;
changing needs an admin key not limited to some customers (rule sets are shared by every customer)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from typing import Any

from flask import flash, redirect, request, url_for

from adapters.web.auth import actor, check_role, current_key, scope
from adapters.web.console.blueprint import NavItem, bp
from adapters.web.console.json_lines import numbered_json
from adapters.web.console.pages import page
from adapters.web.context import ctx
from adapters.web.json_provider import JSONRefused, loads_exact, refuse_nul
from creditctl.domain.api_key import Role
from creditctl.domain.decision import Order
from creditctl.domain.errors import CreditctlError, InvalidRequest
from creditctl.domain.money import MoneyError, parse_money
from creditctl.services import rule_sets as service
from creditctl.services.backtest import backtest_of, enqueue_backtest
from creditctl.services.rule_set_assignments import pins_by_rule_set
from creditctl.services.simulate_order import simulate_with_rule_set

READERS = (Role.ADMIN, Role.AUDITOR)
NAV_ITEMS = [NavItem("Rule sets", "console.rule_sets", READERS)]


def _editor() -> str:
    return check_role(Role.ADMIN, global_scope=True).name


def _back(rule_set_id: int) -> Any:
    return redirect(url_for("console.rule_set", rule_set_id=rule_set_id))


@bp.route("/rule-sets")
def rule_sets() -> Any:
    check_role(*READERS)
    return page(
        "rule_sets.html",
        listings=service.list_rule_sets(uow=ctx().uow()),
        pins=pins_by_rule_set(scope=scope(), uow=ctx().uow()),
        may_edit=_may_edit(),
    )


def _may_edit() -> bool:
    key = current_key()
    return key.role is Role.ADMIN and key.customers is None


@bp.route("/rule-sets/new", methods=["POST"])
def new_draft() -> Any:
    by = _editor()
    name = request.form.get("name", "").strip() or "draft"
    listing = service.create_draft(name, None, by=by, uow=ctx().uow())
    return _back(listing.record.id)


@bp.route("/rule-sets/<int(max=2147483647):rule_set_id>", methods=["GET", "POST"])
def rule_set(rule_set_id: int, simulation: Any = None) -> Any:
    check_role(*READERS)
    listing = service.get_rule_set(rule_set_id, uow=ctx().uow())
    text, lines = numbered_json(listing.record.document)
    syntax_error = None
    if request.method == "POST" and request.form.get("action") == "save":
        _editor()
        text = request.form.get("document", "")
        try:
            document = loads_exact(text)
            refuse_nul(document)  # as the API refuses a document holding U+0000
        except json.JSONDecodeError as exc:
            syntax_error = f"Not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        except (JSONRefused, ValueError) as exc:
            syntax_error = f"Not JSON this service reads: {exc}"
        else:
            name = request.form.get("name", "").strip() or listing.record.name
            listing = service.update_draft(rule_set_id, name, document, uow=ctx().uow())
            text, lines = numbered_json(listing.record.document)
            flash("Draft saved.", "ok")
    problems = [] if syntax_error else service.problems_of(listing.record.document)
    return page(
        "rule_set.html",
        listing=listing,
        text=text,
        problems=[(pointer, message, _line_of(lines, pointer)) for pointer, message in problems],
        syntax_error=syntax_error,
        may_edit=_may_edit(),
        pins=pins_by_rule_set(scope=scope(), uow=ctx().uow()).get(rule_set_id, []),
        simulation=simulation,
        form=request.form,
    )


def _line_of(lines: dict[str, int], pointer: str) -> int | None:
    """The line of the pointer, or of its nearest parent that exists (a missing member's object)."""
    while pointer:
        if pointer in lines:
            return lines[pointer]
        pointer = pointer.rsplit("/", 1)[0]
    return lines.get("")


@bp.route("/rule-sets/<int(max=2147483647):rule_set_id>/simulate", methods=["POST"])
def simulate(rule_set_id: int) -> Any:
    check_role(*READERS)
    try:  # the API's own parser: two decimals at most, no NaN, no exponent
        amount = parse_money(request.form.get("amount", "").strip())
    except MoneyError as exc:
        raise InvalidRequest(f"the amount {exc}", field="amount") from None
    order = Order(
        "simulation",
        request.form.get("customer_code", "").strip(),
        request.form.get("sale_group_code", "").strip(),
        amount,
    )
    try:
        result = simulate_with_rule_set(rule_set_id, order, None, scope=scope(), uow=ctx().uow())
    except CreditctlError as exc:
        flash(f"Simulation refused: {exc.message}", "error")
        result = None
    return rule_set(rule_set_id, simulation=result)


@bp.route("/rule-sets/<int(max=2147483647):rule_set_id>/backtest", methods=["POST"])
def backtest(rule_set_id: int) -> Any:
    key = check_role(Role.ADMIN, global_scope=True)
    c = ctx()
    listing = service.get_rule_set(rule_set_id, uow=c.uow())
    try:
        start, end = (_day(request.form.get(f, "")) for f in ("from", "to"))
        cmd = backtest_of(listing.record.document, start, end, key.name)
        assert c.backtests is not None, "backtests are not wired"
        run = enqueue_backtest(cmd, store=c.backtests)
    except CreditctlError as exc:
        flash(f"Backtest refused: {exc.message}", "error")
        return rule_set(rule_set_id)
    flash(f"Backtest of {listing.record.name!r} queued: a worker replays it, and this page follows it.", "ok")
    return redirect(url_for("console.backtest_run", run_id=run.id))


def _day(text: str) -> datetime:
    try:
        return datetime.combine(datetime.strptime(text, "%Y-%m-%d").date(), time(), UTC)
    except ValueError:
        raise InvalidRequest("a day as YYYY-MM-DD (UTC midnight)", field="from") from None


@bp.route("/rule-sets/<int(max=2147483647):rule_set_id>/publish", methods=["POST"])
def publish(rule_set_id: int) -> Any:
    by = _editor()
    try:
        service.publish_rule_set(
            rule_set_id,
            reason=request.form.get("reason", "").strip() or "published from the console",
            effective_at=None,
            by=by,
            uow=ctx().uow(),
            actor=actor(),
        )
    except CreditctlError as exc:
        flash(f"Not published: {exc.message}", "error")
    else:
        flash("Published.", "ok")
    return _back(rule_set_id)


@bp.route("/rule-sets/<int(max=2147483647):rule_set_id>/rollback", methods=["POST"])
def rollback(rule_set_id: int) -> Any:
    by = _editor()
    try:
        listing = service.rollback_rule_set(
            rule_set_id,
            reason=request.form.get("reason", "").strip() or "rolled back from the console",
            by=by,
            uow=ctx().uow(),
            actor=actor(),
        )
    except CreditctlError as exc:
        flash(f"Not rolled back: {exc.message}", "error")
        return _back(rule_set_id)
    flash(f"Version {listing.record.version} is a copy of this one and now in effect.", "ok")
    return _back(listing.record.id)
