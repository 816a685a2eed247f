"""Idempotency records on SQL (see creditctl.ports.idempotency): the primary key decides which request
holds a key. An insert that meets an existing record changes nothing (ON CONFLICT DO NOTHING) and says
so; on PostgreSQL it first waits for a concurrent inserter of the same key to commit or roll back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from adapters.sql.tables import idempotency_records
from creditctl.domain.idempotency import Claim, IdempotencyRecord, StoredAnswer
from creditctl.ports.idempotency import write_pending_claim

_i = idempotency_records.c
_INSERT = {"postgresql": pg_insert, "sqlite": sqlite_insert}


class SqlIdempotencyRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, key_hash: str) -> IdempotencyRecord | None:
        row = self._conn.execute(select(idempotency_records).where(_i.key_hash == key_hash)).first()
        return None if row is None else _record(row)

    def add(self, claim: Claim, answer: StoredAnswer | None = None) -> bool:
        values: dict[str, Any] = {
            "key_hash": claim.key_hash,
            "owner": claim.owner,
            "route": claim.route,
            "idempotency_key": claim.key,
            "fingerprint": claim.fingerprint,
            "token": claim.token,
            "created_at": claim.created_at,
            "sealed": False,
        }
        if answer is not None:
            values |= _answer(answer)
        stmt = _INSERT[self._conn.dialect.name](idempotency_records).values(values)
        inserted = stmt.on_conflict_do_nothing(index_elements=[_i.key_hash]).returning(_i.key_hash)
        return self._conn.execute(inserted).first() is not None

    def answer(self, claim: Claim, answer: StoredAnswer) -> bool:
        result = self._conn.execute(
            update(idempotency_records)
            .where(_i.key_hash == claim.key_hash, _i.token == claim.token)
            .values(_answer(answer))
        )
        return result.rowcount == 1

    def forget(self, claim: Claim) -> None:
        self._conn.execute(
            delete(idempotency_records).where(_i.key_hash == claim.key_hash, _i.token == claim.token)
        )

    def discard_expired(self, key_hash: str, before: datetime) -> None:
        self._conn.execute(
            delete(idempotency_records).where(_i.key_hash == key_hash, _i.created_at <= before)
        )

    def prune(self, before: datetime) -> int:
        return int(self._conn.execute(delete(idempotency_records).where(_i.created_at <= before)).rowcount)


def reseal_answers(engine: Engine, reseal: Callable[[str], str]) -> int:
    """Key rotation: re-encrypt every kept answer that shows a secret (a webhook subscription's) under
    the newest key, in one transaction, so a retry within the retention period still gets its answer
    once the old key is retired."""
    count = 0
    with engine.begin() as conn:
        rows = conn.execute(
            select(_i.key_hash, _i.body).where(_i.sealed.is_(True), _i.body.is_not(None)).with_for_update()
        ).all()
        for row in rows:
            conn.execute(
                update(idempotency_records).where(_i.key_hash == row.key_hash).values(body=reseal(row.body))
            )
            count += 1
    return count


def claim_before_commit(conn: Connection) -> Claim | None:
    """For a transaction outside the unit of work, just before it commits on `conn`: the request's
    pending claim goes in with it (see creditctl.ports.idempotency). Mark the returned claim written
    after the commit."""
    return write_pending_claim(SqlIdempotencyRepository(conn))


def _answer(answer: StoredAnswer) -> dict[str, Any]:
    return {
        "status_code": answer.status,
        "body": answer.body,
        "headers": answer.headers,
        "sealed": answer.sealed,
    }


def _record(row: Row[Any]) -> IdempotencyRecord:
    answer = None
    if row.status_code is not None:
        answer = StoredAnswer(
            status=row.status_code, body=row.body or "", headers=dict(row.headers or {}), sealed=row.sealed
        )
    return IdempotencyRecord(
        fingerprint=row.fingerprint, token=row.token, created_at=row.created_at, answer=answer
    )
