"""A batched unit's writes go to PostgreSQL as one statement only where that changes nothing.

PostgreSQL runs the parts of one statement (`WITH w1 AS (write), ... write`) on one snapshot: a part does
not see the rows another writes. adapters.sql.pipeline merges a commit's queued writes only when none of
them reads rows (no SELECT, FROM, ON CONFLICT or RETURNING) and no table is both updated and written by
another part; otherwise they are sent one by one, as before. The merged text keeps each part's SQL, its
placeholders renumbered after the parameters of the parts before it."""

from __future__ import annotations

import re

from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, insert, select, update

from adapters.sql.accounts import _SAVE
from adapters.sql.audit import _PG_APPEND
from adapters.sql.decisions import _insert_batched
from adapters.sql.driver_statements import DriverStatement
from adapters.sql.holds import _PG_ADD
from adapters.sql.pipeline import MergedWrites, merged

_meta = MetaData()
_a = Table("a", _meta, Column("id", Integer, primary_key=True), Column("v", String))
_b = Table("b", _meta, Column("id", Integer, primary_key=True), Column("v", String))

INSERT_A = DriverStatement.of(insert(_a), keys=["id", "v"])
INSERT_B = DriverStatement.of(insert(_b), keys=["id", "v"])
UPDATE_A = DriverStatement.of(update(_a).where(_a.c.id == bindparam("k_id")), keys=["v"])
UPDATE_B = DriverStatement.of(update(_b).where(_b.c.id == bindparam("k_id")), keys=["v"])
INSERT_A_FROM_B = DriverStatement.of(insert(_a).from_select(["id", "v"], select(_b.c.id, _b.c.v)))
INSERT_A_RETURNING = DriverStatement.of(insert(_a).returning(_a.c.id), keys=["id", "v"])


def _queued(*statements: DriverStatement) -> list:
    return [(s, [f"{n}.{i}".encode() for i in range(len(s.wire_order))]) for n, s in enumerate(statements)]


def test_the_decisions_writes_go_as_one_statement_with_every_parameter_in_order() -> None:
    decision = _insert_batched(("id", "order_id", "account_id", "customer_code", "amount_fen"))
    account = DriverStatement.of(_SAVE, keys=["exposure_fen", "updated_at"])  # as a decision saves it
    queued = _queued(decision, _PG_ADD, account, _PG_APPEND)
    [(statement, params)] = merged(queued)
    assert isinstance(statement, MergedWrites)
    assert params == [p for _s, ps in queued for p in ps]
    sql = statement.wire_sql.decode()
    assert sql.startswith("WITH w1 AS (INSERT INTO decisions ") and " w3 AS (" in sql
    assert sql.split(") INSERT INTO audit_events ")[1:], sql  # the last part is the statement itself
    # Every placeholder once, numbered 1..n across the parts: each part's after the ones before it.
    numbers = [int(n) for n in re.findall(r"\$(\d+)", sql)]
    assert sorted(numbers) == list(range(1, len(params) + 1))
    assert statement.wire_name.startswith(b"creditctl_w_")
    assert merged(queued)[0][0] is statement  # made once per shape


def test_a_part_renumbered_keeps_its_own_text_around_the_placeholders() -> None:
    [(statement, _params)] = merged(_queued(INSERT_A, INSERT_B))
    first, second = INSERT_A.wire_sql.decode(), INSERT_B.wire_sql.decode()
    shifted = re.sub(r"\$(\d+)", lambda m: f"${int(m.group(1)) + len(INSERT_A.wire_order)}", second)
    assert statement.wire_sql.decode() == f"WITH w1 AS ({first}) {shifted}"


def test_inserts_into_one_table_and_updates_of_others_are_merged() -> None:
    for shape in [(INSERT_A, INSERT_A), (INSERT_A, UPDATE_B), (UPDATE_B, INSERT_A, INSERT_A)]:
        assert isinstance(merged(_queued(*shape))[0][0], MergedWrites), shape


def test_writes_that_could_read_each_others_rows_go_one_by_one() -> None:
    refused = [
        (INSERT_A, UPDATE_A),  # the update would not see the row inserted beside it
        (UPDATE_A, INSERT_A),
        (UPDATE_A, UPDATE_A),  # one row updated twice in a statement: one update is lost
        (INSERT_B, INSERT_A_FROM_B),  # reads b, written beside it
        (INSERT_A_RETURNING, INSERT_B),
    ]
    for shape in refused:
        queued = _queued(*shape)
        assert merged(queued) == queued, shape


def test_one_write_is_sent_as_it_is() -> None:
    queued = _queued(_PG_APPEND)
    assert merged(queued) == queued
