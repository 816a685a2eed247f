"""The bare-stack ceiling for bench/bench.py: the least an idempotent decision needs, in plain SQL.

A minimal Flask app, served by gunicorn with the same settings as `creditctl serve`, against the same
migrated database (same tables, same indexes, same rows) as the service. Per request:

  parse the JSON body, look the API key's SHA-256 up in a dict (loaded once per worker),
  BEGIN (BEGIN IMMEDIATE on SQLite) · SELECT the account row FOR UPDATE (PostgreSQL) ·
  the eight default rules as plain Decimal comparisons · INSERT the decision
  ON CONFLICT (customer_code, order_id) DO NOTHING (a conflict is answered as a replay, or 409 for
  another body) · INSERT the hold · UPDATE the exposure · COMMIT · answer JSON.

One DB-API connection per serving thread (psycopg 3 on PostgreSQL, sqlite3 on SQLite), opened lazily
in the thread (never across a fork): `creditctl serve` runs gthread workers (--threads, default 8), and
threads sharing one connection would share one transaction. Configured by BENCH_CEILING_DB: a
`postgresql://...` DSN or a `sqlite:///path` URL. Not production code: it exists to be measured against.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from flask import Flask, Response, request

CENT = Decimal("0.01")
SEVERITY = {"approve": 0, "defer": 1, "block": 2, "freeze": 3}
DB_URL = os.environ.get("BENCH_CEILING_DB", "")
IS_PG = DB_URL.startswith("postgresql")

app = Flask("ceiling")

_local = threading.local()  # per thread: its connection, keys and rule set parameters


# --- per-thread connection, keys and rule set parameters ----------------------------------------


def _connect() -> Any:
    if IS_PG:
        import psycopg

        return psycopg.connect(DB_URL, autocommit=False)
    conn = sqlite3.connect(DB_URL.removeprefix("sqlite:///"), timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _worker() -> dict[str, Any]:
    state: dict[str, Any] | None = getattr(_local, "state", None)
    if state is not None and state.get("pid") == os.getpid():
        return state
    conn = _connect()
    cur = conn.cursor()
    cur.execute("SELECT key_hash, role FROM api_keys WHERE revoked_at IS NULL")
    keys = {h: role for h, role in cur.fetchall()}
    cur.execute("SELECT id, version, document FROM rule_sets ORDER BY version DESC LIMIT 1")
    rs_id, rs_version, document = cur.fetchone()
    params = json.loads(document, parse_float=Decimal)["params"]
    if IS_PG:
        conn.commit()
    state = dict(
        pid=os.getpid(),
        conn=conn,
        keys=keys,
        rule_set=(rs_id, rs_version),
        params={k: Decimal(str(v)) for k, v in params.items()},
    )
    _local.state = state
    return state


def close_this_thread() -> None:
    """Close the calling thread's connection, if it opened one (profile_decide.py, in-process)."""
    state = getattr(_local, "state", None)
    if state is not None:
        state["conn"].close()
        _local.state = None


# --- time and money in the columns' formats -----------------------------------------------------


def _ts(dt: datetime) -> Any:
    """A UtcDateTime bind value: aware datetime on PostgreSQL, SQLAlchemy's naive text on SQLite."""
    return dt if IS_PG else dt.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def _read_ts(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _money(fen: int | None) -> str | None:
    return None if fen is None else str((Decimal(fen) / 100).quantize(CENT))


def _problem(status: int, title: str) -> Response:
    body = json.dumps({"type": "about:blank", "title": title, "status": status})
    return Response(body, status=status, mimetype="application/problem+json")


# --- the eight default rules as plain comparisons -----------------------------------------------


def _rules(
    amount: Decimal, status: str, balance: Decimal | None, age_s: int | None, exposure: Decimal, p: dict
) -> tuple[str, list[str], Decimal | None]:
    """(outcome, matched rule ids, available) for the default rule set."""
    credit_limit = p["base_credit_limit"] * p["grade_multiplier_a"]  # neutral payment history: grade A
    usable = balance is not None and age_s is not None and age_s <= p["max_balance_age_s"]
    available = balance - exposure - p["safety_margin"] if usable else None
    matched: list[tuple[str, str]] = []
    if status == "frozen":
        matched.append(("frozen", "block"))
    if not usable:
        matched.append(("stale", "defer"))
    else:
        if balance <= 0:
            matched.append(("depleted", "freeze"))
        if amount > available + credit_limit:
            matched.append(("over_limit", "block"))
        if available < amount <= available + credit_limit:
            matched.append(("short", "defer"))
        if amount <= available and available - amount < p["low_balance_threshold"]:
            matched.append(("low", "approve"))
    if p["max_overdue_days"] < 0:  # payment.max_overdue_days is 0 until payment records exist
        matched.append(("overdue", "freeze"))
    if amount > p["single_order_review_amount"]:
        matched.append(("large", "defer"))
    outcome = max((o for _, o in matched), key=SEVERITY.__getitem__, default="approve")
    return outcome, [r for r, _ in matched], available


# --- the endpoint ---------------------------------------------------------------------------------


@app.get("/healthz")
def healthz() -> Response:
    return Response('{"status":"ok"}', mimetype="application/json")


@app.post("/v1/decisions")
def decide() -> Response | tuple[Any, int]:
    w = _worker()
    header = request.headers.get("Authorization", "")
    secret = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if w["keys"].get(hashlib.sha256(secret.encode()).hexdigest()) != "orders":
        return _problem(401, "Unauthenticated")
    body = request.get_json(silent=True)
    try:
        order_id = body["order_id"]
        customer = body["customer_code"]
        sale_group = body["sale_group_code"]
        amount = Decimal(body["amount"]).quantize(CENT)
    except Exception:
        return _problem(422, "Invalid request")
    channel = body.get("channel")
    raw = json.dumps(
        {
            "order_id": order_id,
            "customer_code": customer,
            "sale_group_code": sale_group,
            "amount": str(amount),
            "channel": channel,
            "metadata": body.get("metadata"),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    fingerprint = hashlib.sha256(raw.encode()).hexdigest()
    conn = w["conn"]
    try:
        return _decide(w, conn, order_id, customer, sale_group, amount, channel, fingerprint)
    except Exception:
        conn.rollback()
        raise


def _decide(
    w: dict[str, Any],
    conn: Any,
    order_id: str,
    customer: str,
    sale_group: str,
    amount: Decimal,
    channel: str | None,
    fingerprint: str,
) -> Response | tuple[Any, int]:
    ph = "%s" if IS_PG else "?"
    cur = conn.cursor()
    if not IS_PG:
        cur.execute("BEGIN IMMEDIATE")
    cur.execute(
        "SELECT id, status, exposure_fen, balance_fen, balance_fetched_at FROM credit_accounts "
        f"WHERE customer_code = {ph} AND sale_group_code = {ph}" + (" FOR UPDATE" if IS_PG else ""),
        (customer, sale_group),
    )
    row = cur.fetchone()
    if row is None:
        conn.rollback()
        return _problem(404, "Unknown account")
    account_id, status, exposure_fen, balance_fen, fetched_at = row
    now = datetime.now(UTC)
    fetched = _read_ts(fetched_at)
    balance = None if balance_fen is None else Decimal(balance_fen) / 100
    age_s = None if fetched is None else max(0, int((now - fetched).total_seconds()))
    exposure = Decimal(exposure_fen) / 100
    params = w["params"]
    outcome, matched, available = _rules(amount, status, balance, age_s, exposure, params)
    amount_fen = int(amount * 100)
    available_fen = None if available is None else int(available * 100)
    decision_id = str(uuid.uuid4())
    rs_id, rs_version = w["rule_set"]
    deferral = now + timedelta(seconds=int(params["deferral_ttl_s"])) if outcome == "defer" else None
    cur.execute(
        "INSERT INTO decisions (id, order_id, account_id, customer_code, sale_group_code, amount_fen, "
        "channel, fingerprint, outcome, state, reasons, actions, facts, balance_fen, balance_fetched_at, "
        "balance_source, exposure_fen, available_fen, credit_limit_fen, credit_grade, rule_set_id, "
        "rule_set_version, decided_at, deferral_expires_at, rechecks) VALUES "
        f"({', '.join([ph] * 25)}) ON CONFLICT (customer_code, order_id) DO NOTHING",
        (
            decision_id,
            order_id,
            account_id,
            customer,
            sale_group,
            amount_fen,
            channel,
            fingerprint,
            outcome,
            "deferred" if outcome == "defer" else "decided",
            json.dumps([{"rule": r} for r in matched]),
            "[]",
            json.dumps({"order.amount": str(amount), "available": str(available), "age_s": age_s}),
            balance_fen,
            _ts(fetched) if fetched else None,
            "fake",
            exposure_fen,
            available_fen,
            0,
            "A",
            rs_id,
            rs_version,
            _ts(now),
            _ts(deferral) if deferral else None,
            0,
        ),
    )
    if cur.rowcount != 1:  # the order id is taken: a replay (same body) or a conflict
        conn.rollback()
        cur.execute(
            f"SELECT fingerprint, outcome, id FROM decisions WHERE customer_code = {ph} AND order_id = {ph}",
            (customer, order_id),
        )
        found = cur.fetchone()
        conn.rollback()
        if found is None or found[0] != fingerprint:
            return _problem(409, "Order id reused")
        return {"decision_id": found[2], "order_id": order_id, "outcome": found[1]}, 200
    hold = None
    if outcome == "approve":
        hold_id = uuid.uuid4().hex
        expires = now + timedelta(seconds=int(params["hold_ttl_s"]))
        cur.execute(
            "INSERT INTO holds (id, account_id, order_id, decision_id, amount_fen, status, counting, "
            f"created_at, expires_at) VALUES ({', '.join([ph] * 9)})",
            (hold_id, account_id, order_id, decision_id, amount_fen, "open", True, _ts(now), _ts(expires)),
        )
        cur.execute(
            f"UPDATE credit_accounts SET exposure_fen = exposure_fen + {ph}, updated_at = {ph} "
            f"WHERE id = {ph}",
            (amount_fen, _ts(now), account_id),
        )
        hold = {"id": hold_id, "amount": str(amount), "status": "open", "expires_at": expires.isoformat()}
    conn.commit()
    return {
        "decision_id": decision_id,
        "order_id": order_id,
        "outcome": outcome,
        "reasons": [{"rule": r} for r in matched],
        "amount": str(amount),
        "balance": None
        if balance is None
        else {"amount": _money(balance_fen), "fetched_at": fetched.isoformat()},
        "exposure": str(exposure),
        "available": None if available is None else str(available),
        "hold": hold,
        "rule_set": {"id": rs_id, "version": rs_version},
        "decided_at": now.isoformat(),
    }, 201
