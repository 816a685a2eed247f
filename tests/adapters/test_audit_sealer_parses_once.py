"""A seal round on SQL parses each event's payload once (the hashed text and the fields the sealer reads
come from one json.loads; sealed_payload and AuditEvent parsed it twice)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from adapters.sql.unit_of_work import SqlUnitOfWork
from creditctl.domain import audit as audit_domain
from creditctl.domain.audit import Actor
from creditctl.services.audit import seal_audit, verify_audit
from tests.unit.test_audit_payload_parsed_once import CountingJson

pytestmark = pytest.mark.adapters


@pytest.mark.parametrize("full", [True, False], ids=["full pass", "quick pass"])
def test_a_seal_round_parses_each_event_once(
    engine: Engine, full: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    uow = SqlUnitOfWork(engine)
    seal_audit(uow=uow)  # whatever earlier tests left
    with uow:
        for n in range(3):
            uow.audit.append(
                "test.parsed", at=datetime.now(UTC), actor=Actor(name="t", role="admin"), subject={"n": n}
            )
        uow.commit()
    shim = CountingJson()
    monkeypatch.setattr(audit_domain, "json", shim)
    assert seal_audit(uow=uow, full=full) == 3
    assert shim.loads_calls == 3
    monkeypatch.undo()
    assert verify_audit(uow=uow).ok
