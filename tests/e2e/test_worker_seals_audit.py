"""End to end: `creditctl worker` seals the audit trail within seconds of a commit, with several workers
at once (SQLite and PostgreSQL) and while a worker is stuck in a slow delivery; the chain verifies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import Engine

from adapters.bootstrap import bootstrap, load_settings
from creditctl.domain.audit import SYSTEM
from creditctl.services.audit import verify_audit
from creditctl.services.context import AppContext
from creditctl.services.webhooks import create_subscription
from tests.e2e.served import wait_for
from tests.webhook_receiver import Receiver, running

pytestmark = pytest.mark.e2e

CREDITCTL = Path(sys.executable).with_name("creditctl")
SEALED_WITHIN_S = 10.0  # the workers seal every 0.2 s; slack for a loaded machine


def _env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "CREDITCTL_INSTANCE_PATH": str(tmp_path / "instance"),
        "CREDITCTL_DATABASE_URL": database_url,
        "CREDITCTL_ALLOW_LOOPBACK_URLS": "true",
        "CREDITCTL_WEBHOOK_TIMEOUT_S": "30",
    }


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "sqlite":
        env = _env(tmp_path, f"sqlite:///{tmp_path / 'creditctl.db'}")
        subprocess.run([CREDITCTL, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=60)
        return env
    engine: Engine = request.getfixturevalue("postgres_engine")  # migrated; truncated afterwards
    return _env(tmp_path, engine.url.render_as_string(hide_password=False))


@contextmanager
def workers(env: dict[str, str], n: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    args = [CREDITCTL, "worker", "--idle-s", "0.1", "--seal-every", "0.2"]
    started = [subprocess.Popen(args, env=env) for _ in range(n)]
    try:
        yield started
    finally:
        for w in started:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in started:
            w.wait(timeout=60)


def write_events(context: AppContext, n: int) -> None:
    with context.uow() as uow:
        for i in range(n):
            uow.audit.append(
                "test.written", at=uow.now(), actor=SYSTEM, subject={"n": i}, after={"at": datetime.now(UTC)}
            )
        uow.commit()


def unsealed(context: AppContext) -> int:
    with context.uow() as uow:
        return uow.audit.count_unsealed()


def test_several_workers_seal_every_commit_within_seconds(env: dict[str, str]) -> None:
    context = bootstrap(load_settings(env))
    with workers(env, 3) as started:
        for batch in (1, 50, 7):
            write_events(context, batch)
            wait_for(lambda: unsealed(context) == 0, SEALED_WITHIN_S, f"a batch of {batch} sealed")
        assert all(w.poll() is None for w in started)  # no worker died of a lost sealing race
    report = verify_audit(uow=context.uow())
    assert report.ok, report.problem
    assert report.unsealed == 0


def test_a_worker_stuck_in_a_slow_delivery_still_seals(tmp_path: Path) -> None:
    env = _env(tmp_path, f"sqlite:///{tmp_path / 'creditctl.db'}")
    subprocess.run([CREDITCTL, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=60)
    context = bootstrap(load_settings(env))
    tools = context.webhooks
    assert tools is not None
    receiver = Receiver("")
    with running(receiver):
        receiver.secret = create_subscription(
            receiver.url, ["upstream.down"], store=tools.store, box=tools.box, check_url=tools.check_url
        ).secret
        with context.uow() as uow:
            uow.outbox.add(event_id=uuid4().hex, topic="upstream.down", payload={}, now=uow.now())
            uow.commit()
        receiver.stall.set()
        try:
            with workers(env, 1):
                wait_for(receiver.stalled.is_set, 30, "the worker's POST")
                write_events(context, 5)
                wait_for(lambda: unsealed(context) == 0, SEALED_WITHIN_S, "the events sealed")
                assert receiver.stall.is_set()  # still mid-delivery: the sealer did not wait for it
                receiver.stall.clear()  # let the POST end, so the worker stops at once
        finally:
            receiver.stall.clear()
    assert verify_audit(uow=context.uow()).ok


def test_the_worker_anchors_the_head_on_schedule_and_verify_checks_the_chain_against_it(
    tmp_path: Path,
) -> None:
    anchors = tmp_path / "anchors.jsonl"
    env = {
        **_env(tmp_path, f"sqlite:///{tmp_path / 'creditctl.db'}"),
        "CREDITCTL_AUDIT_ANCHOR": f"file:{anchors}",
        "CREDITCTL_AUDIT_ANCHOR_EVERY_S": "0.3",
    }
    subprocess.run([CREDITCTL, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=60)
    context = bootstrap(load_settings(env))

    def anchored_head() -> bool:
        with context.uow() as uow:
            head = uow.audit.head()
        lines = anchors.read_text().splitlines() if anchors.exists() else []
        return bool(lines) and (json.loads(lines[-1])["position"], json.loads(lines[-1])["hash"]) == head

    with workers(env, 1):
        for batch in (5, 3):  # each batch sealed, then anchored at the next interval
            write_events(context, batch)
            wait_for(lambda: unsealed(context) == 0 and anchored_head(), SEALED_WITHIN_S, "the head anchored")
    lines = [json.loads(line) for line in anchors.read_text().splitlines()]
    assert len(lines) >= 2
    with context.uow() as uow:
        stored = [link[4] for link in uow.audit.chain(after_position=0, limit=100)]
    assert [h for line in lines for h in line["hashes"]] == stored  # every hash, each anchored once
    verified = subprocess.run(
        [CREDITCTL, "audit", "verify"], env=env, capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0, verified.stderr
    assert f"checked against {len(lines)} anchors from file:{anchors}" in verified.stdout
