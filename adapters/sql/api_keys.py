"""API keys on SQL: only the SHA-256 of a key is stored."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from adapters.sql.tables import api_keys
from creditctl.domain.api_key import ApiKey, Role
from creditctl.domain.money import from_fen, to_fen

_k = api_keys.c


class SqlApiKeyRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(
        self,
        *,
        name: str,
        role: Role,
        customers: frozenset[str] | None,
        key_hash: str,
        now: datetime,
        approval_limit: Decimal | None = None,
        owner: str | None = None,
    ) -> ApiKey:
        owner = owner or name
        result = self._conn.execute(
            insert(api_keys)
            .values(
                name=name,
                role=role.value,
                key_hash=key_hash,
                customers=sorted(customers) if customers is not None else None,
                created_at=now,
                approval_limit_fen=None if approval_limit is None else to_fen(approval_limit),
                owner=owner,
            )
            .returning(_k.id)
        )
        return ApiKey(
            id=result.scalar_one(),
            name=name,
            role=role,
            customers=customers,
            created_at=now,
            approval_limit=approval_limit,
            owner=owner,
        )

    def by_hash(self, key_hash: str, *, include_revoked: bool = False) -> ApiKey | None:
        query = select(api_keys).where(_k.key_hash == key_hash)
        if not include_revoked:
            query = query.where(_k.revoked_at.is_(None))
        row = self._conn.execute(query).first()
        return _to_key(row) if row else None

    def all(self) -> list[ApiKey]:
        return [_to_key(r) for r in self._conn.execute(select(api_keys).order_by(_k.id))]

    def revoke(self, key_id: int, now: datetime) -> bool:
        stmt = update(api_keys).where(_k.id == key_id, _k.revoked_at.is_(None)).values(revoked_at=now)
        return self._conn.execute(stmt).rowcount == 1


def _to_key(r: Row[Any]) -> ApiKey:
    return ApiKey(
        id=r.id,
        name=r.name,
        role=Role(r.role),
        customers=frozenset(r.customers) if r.customers is not None else None,
        created_at=r.created_at,
        revoked_at=r.revoked_at,
        approval_limit=None if r.approval_limit_fen is None else from_fen(r.approval_limit_fen),
        owner=r.owner,
    )
