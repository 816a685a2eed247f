"""Upstream configs on SQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from adapters.sql.tables import upstream_configs, upstream_tokens
from creditctl.ports.upstream_configs import StoredConfig

_u = upstream_configs.c


class SqlUpstreamConfigRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, name: str) -> StoredConfig | None:
        row = self._conn.execute(select(upstream_configs).where(_u.name == name)).first()
        return _to_config(row) if row else None

    def put(self, config: StoredConfig) -> None:
        values = {
            "kind": config.kind,
            "document": config.document,
            "is_active": config.is_active,
            "updated_at": config.updated_at,
        }
        if config.is_active:
            self._conn.execute(
                update(upstream_configs)
                .where(_u.kind == config.kind, _u.name != config.name)
                .values(is_active=False)
            )
        # Any change forgets the config's upstream token (and any fetch lease on it, so a fetch still
        # running under the old settings cannot store its token afterwards).
        self._conn.execute(delete(upstream_tokens).where(upstream_tokens.c.config_name == config.name))
        done = self._conn.execute(update(upstream_configs).where(_u.name == config.name).values(values))
        if done.rowcount == 0:
            self._conn.execute(
                insert(upstream_configs).values(
                    values | {"name": config.name, "created_at": config.created_at}
                )
            )

    def reseal(self, name: str, document: dict[str, Any]) -> None:
        self._conn.execute(update(upstream_configs).where(_u.name == name).values(document=document))

    def all(self) -> list[StoredConfig]:
        return [_to_config(r) for r in self._conn.execute(select(upstream_configs).order_by(_u.name))]

    def active(self, kind: str) -> StoredConfig | None:
        stmt = select(upstream_configs).where(_u.kind == kind, _u.is_active.is_(True)).limit(1)
        row = self._conn.execute(stmt).first()
        return _to_config(row) if row else None


def _to_config(r: Row[Any]) -> StoredConfig:
    return StoredConfig(
        name=r.name,
        kind=r.kind,
        document=dict(r.document),
        is_active=bool(r.is_active),
        created_at=r.created_at,
        updated_at=r.updated_at,
    )
