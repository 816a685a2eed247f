"""End to end: the failover drill in its bounded form (deploy/failover_drill.py; the long form is its
command line). A primary with a synchronous standby, `creditctl serve` on a multi-host URL with
target_session_attrs=read-write, order systems deciding; the primary crashes (pg_ctl stop -m immediate)
and the standby is promoted. Without a restart the service answers 2xx again, every refusal in between is
503 problem+json (the database is away), every decision a client saw acknowledged is in the promoted
database with the outcome it was told, and the audit chain verifies there."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

SECONDS, FAIL_AFTER, CLIENTS = 10.0, 3.0, 4  # the bounded form: about 25 s with the servers' setup
UNAVAILABLE = "https://creditctl.dev/problems/unavailable/database"


def _drill_module() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "deploy" / "failover_drill.py"
    spec = importlib.util.spec_from_file_location("failover_drill", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while they are made
    spec.loader.exec_module(module)
    return module


def test_no_acknowledged_decision_is_lost_when_the_primary_fails_over(tmp_path: Path) -> None:
    drill = _drill_module()
    d = drill.drill(tmp_path, seconds=SECONDS, fail_after=FAIL_AFTER, clients=CLIENTS)
    print(drill.report(d, clients=CLIENTS, seconds=SECONDS))

    assert d.acknowledged, "no decision was acknowledged"
    assert any(a.sent_at > d.promoted_at and 200 <= a.status < 300 for a in d.answers), (
        "the service did not answer 2xx after the promotion without a restart"
    )
    refused = [a for a in d.answers if not 200 <= a.status < 300]
    assert all(a.status == 503 and a.detail == UNAVAILABLE for a in refused), refused[:5]
    assert all(a.status in (200, 201) for a in d.resent), d.resent
    assert d.missing == [], f"acknowledged, then lost: {d.missing[:10]}"
    assert d.changed == [], f"acknowledged with another outcome than stored: {d.changed[:10]}"
    assert d.audit_ok, d.audit_verify
