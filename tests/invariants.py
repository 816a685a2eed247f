"""The one invariant checker (reliability-tests.md): run it on any database after any test.

It reads the tables directly, in one consistent snapshot, and returns every violation it finds as a
readable line; a test asserts the list is empty (`assert_invariants(engine)`).

For every account:
  * exposure_fen equals what its holds hold: the open remainders (amount_fen - settled_fen of open
    holds) plus the settled parts that still count (hold_settlements.counting);
  * that is no more than balance_fen + credit limit (base_credit_limit from the account's params or
    else the active rule set, times the grade A multiplier, 1.00 by default) when anything is held.
For every hold: a known status; settled_fen is the sum of its parts, 0 <= settled_fen <= amount_fen,
  less than amount_fen while open and equal to it once settled; counting exactly when open or when a
  settled part still counts; ended_at set exactly when it has ended. Every part is positive, on its
  hold's account, and a settlement id is used once per hold.
For every order id: at most one decision; an approve decision has exactly one hold (same account, same
  amount) and no other outcome has one.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import ROUND_DOWN, Decimal
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from adapters.sql.tables import credit_accounts, decisions, hold_settlements, holds, rule_sets

HOLD_STATUSES = frozenset({"open", "settled", "released", "expired"})
OUTCOMES = frozenset({"approve", "defer", "block", "freeze"})
STATES = frozenset({"decided", "deferred", "cancelled", "expired"})


def check_invariants(engine: Engine) -> list[str]:
    """Every violation of the invariants, as human-readable lines; empty when the database is sound."""
    with _snapshot(engine) as conn:
        params = _active_params(conn)
        hold_rows = list(conn.execute(select(holds)))
        part_rows = list(conn.execute(select(hold_settlements)))
        violations = _check_accounts(conn, hold_rows, part_rows, params)
        violations += _check_holds(hold_rows, part_rows)
        violations += _check_decisions(conn, hold_rows)
    return violations


def assert_invariants(engine: Engine, context: str = "") -> None:
    """Fail with every violation listed (and `context`, e.g. the seed, to replay the run)."""
    violations = check_invariants(engine)
    assert not violations, (
        f"{len(violations)} invariant violation(s){' ' + context if context else ''}:\n"
        + ("\n".join(violations[:50]))
    )


def _snapshot(engine: Engine) -> Connection:
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def _active_params(conn: Connection) -> dict[str, Any]:
    row = conn.execute(select(rule_sets.c.document).order_by(rule_sets.c.version.desc()).limit(1)).first()
    return dict((row.document or {}).get("params") or {}) if row else {}


def _credit_limit_fen(account_params: dict[str, Any] | None, active: dict[str, Any]) -> int:
    base = (account_params or {}).get("base_credit_limit", active.get("base_credit_limit", 0))
    multiplier = (account_params or {}).get("grade_multiplier_a", active.get("grade_multiplier_a", "1.00"))
    limit = (Decimal(str(base)) * Decimal(str(multiplier))).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    return int(max(limit, Decimal(0)) * 100)


def _check_accounts(
    conn: Connection, hold_rows: list[Any], part_rows: list[Any], params: dict[str, Any]
) -> list[str]:
    counting: dict[int, int] = defaultdict(int)
    for h in hold_rows:
        if h.status == "open":
            counting[h.account_id] += h.amount_fen - h.settled_fen
    for p in part_rows:
        if p.counting:
            counting[p.account_id] += p.amount_fen
    out = []
    for a in conn.execute(select(credit_accounts).order_by(credit_accounts.c.id)):
        name = f"account {a.customer_code}/{a.sale_group_code} (id {a.id})"
        held = counting.get(a.id, 0)
        if a.exposure_fen != held:
            out.append(f"{name}: exposure_fen {a.exposure_fen} != open remainders + counting parts {held}")
        ceiling = (a.balance_fen or 0) + _credit_limit_fen(a.params, params)
        if held > 0 and held > ceiling:  # a negative balance with nothing held overspends nothing
            out.append(
                f"{name}: counting holds {held} fen exceed balance {a.balance_fen} + credit limit "
                f"= {ceiling} fen"
            )
    return out


def _check_holds(hold_rows: list[Any], part_rows: list[Any]) -> list[str]:
    parts: dict[str, list[Any]] = defaultdict(list)
    for p in part_rows:
        parts[p.hold_id].append(p)
    out = []
    for h in hold_rows:
        name = f"hold {h.id} (order {h.order_id})"
        mine = parts.pop(h.id, [])
        part_counts = any(p.counting for p in mine)
        if h.status not in HOLD_STATUSES:
            out.append(f"{name}: unknown status {h.status!r}")
        if h.counting and not (h.status == "open" or part_counts):
            out.append(f"{name}: counts although it is {h.status} and none of its settled parts counts")
        if not h.counting and (h.status == "open" or part_counts):
            out.append(
                f"{name}: {h.status} but not counting" + (" (a settled part counts)" if part_counts else "")
            )
        if (h.status == "open") != (h.ended_at is None):
            out.append(f"{name}: status {h.status} with ended_at {h.ended_at}")
        if h.amount_fen <= 0:
            out.append(f"{name}: amount_fen {h.amount_fen} is not positive")
        out += _check_parts(name, h, mine)
    out += [f"settlement {p.id}: no hold {p.hold_id}" for rest in parts.values() for p in rest]
    return out


def _check_parts(name: str, h: Any, mine: list[Any]) -> list[str]:
    out = []
    total = sum(p.amount_fen for p in mine)
    if total != h.settled_fen or not 0 <= h.settled_fen <= h.amount_fen:
        out.append(f"{name}: settled_fen {h.settled_fen}, parts sum {total}, amount_fen {h.amount_fen}")
    if h.status == "open" and h.settled_fen >= h.amount_fen:
        out.append(f"{name}: open with nothing left ({h.settled_fen} of {h.amount_fen} settled)")
    if h.status == "settled" and h.settled_fen != h.amount_fen:
        out.append(f"{name}: settled with {h.amount_fen - h.settled_fen} fen never settled")
    ids = Counter(p.settlement_id for p in mine if p.settlement_id is not None)
    out += [f"{name}: settlement id {i!r} used {n} times" for i, n in ids.items() if n > 1]
    for p in mine:
        if p.amount_fen <= 0 or p.account_id != h.account_id:
            out.append(f"{name}: part {p.id} of {p.amount_fen} fen on account {p.account_id}")
    return out


def _check_decisions(conn: Connection, hold_rows: list[Any]) -> list[str]:
    out = []
    duplicated = conn.execute(
        select(decisions.c.order_id, func.count()).group_by(decisions.c.order_id).having(func.count() > 1)
    )
    out += [f"order {order_id}: {n} decisions" for order_id, n in duplicated]
    holds_by_order = Counter(h.order_id for h in hold_rows)
    hold_of = {h.order_id: h for h in hold_rows}
    rows = conn.execute(
        select(
            decisions.c.order_id,
            decisions.c.outcome,
            decisions.c.state,
            decisions.c.account_id,
            decisions.c.amount_fen,
        )
    )
    for d in rows:
        name = f"decision for order {d.order_id}"
        if d.outcome not in OUTCOMES or d.state not in STATES:
            out.append(f"{name}: unknown outcome/state {d.outcome!r}/{d.state!r}")
        n = holds_by_order.get(d.order_id, 0)
        if d.outcome == "approve":
            if n != 1:
                out.append(f"{name}: approved with {n} holds")
                continue
            h = hold_of[d.order_id]
            if (h.account_id, h.amount_fen) != (d.account_id, d.amount_fen):
                out.append(f"{name}: hold on account {h.account_id} for {h.amount_fen} fen does not match")
        elif n:
            out.append(f"{name}: outcome {d.outcome} but {n} hold(s)")
    decided = {d.order_id for d in conn.execute(select(decisions.c.order_id))}
    out += [
        f"hold {h.id}: no decision for order {h.order_id}" for h in hold_rows if h.order_id not in decided
    ]
    return out
