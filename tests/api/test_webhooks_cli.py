"""`creditctl worker --once` delivers a round; `creditctl webhooks status|redrive|prune` for operators."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from adapters.bootstrap import Settings
from adapters.cli.main import CliOps, build_cli
from adapters.fake.clock import FakeClock
from creditctl.services.api_keys import create_api_key
from creditctl.services.audit import verify_audit
from creditctl.services.context import AppContext, WebhookTools
from tests.adapters.test_webhook_delivery import add_events, subscribe, tools
from tests.webhook_receiver import Receiver, running

pytestmark = pytest.mark.api


def cli_on(context: AppContext, engine: Engine, t: WebhookTools, tmp_path: Path) -> Callable[..., str]:
    """`creditctl ARGS` on this context (webhooks wired to `t`); returns the output, checks the code."""
    wired = replace(context, webhooks=t)
    url = str(engine.url)
    command = build_cli(
        CliOps(
            load_settings=lambda: Settings(instance_path=tmp_path / "instance", database_url=url),
            make_context=lambda: wired,
            upgrade_db=lambda: None,
            database_url=lambda: url,
            configure_logging=lambda level: None,
        )
    )
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(command, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    return run


def unsealed(context: AppContext) -> int:
    with context.uow() as uow:
        return uow.audit.count_unsealed()


def test_worker_once_status_and_redrive(
    context: AppContext, sqlite_engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    t = tools(sqlite_engine, clock, tmp_path, max_attempts=1)
    run = cli_on(context, sqlite_engine, t, tmp_path)
    receiver = Receiver("", fail_rate=1.0)
    with running(receiver):
        receiver.secret = subscribe(t, receiver.url)
        add_events(context.uow, 2)
        assert "dispatched 2 events; delivered 0, failed 0, dead 2" in run("worker", "--once")
        assert json.loads(run("webhooks", "status")) == {"dead": 2, "undispatched": 0}
        run("webhooks", "redrive", "--id", "999999", code=1)
        receiver.fail_rate = 0.0
        assert "redriven: 2" in run("webhooks", "redrive")
        assert "delivered 2" in run("worker", "--once")
        assert "pruned: 0" in run("webhooks", "prune")
    assert len(receiver.processed) == 2


def test_worker_once_seals_the_audit_trail_unless_told_not_to(
    context: AppContext, sqlite_engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    run = cli_on(context, sqlite_engine, tools(sqlite_engine, clock, tmp_path), tmp_path)
    create_api_key(name="erp", role="orders", customers=None, uow=context.uow(), clock=context.clock)
    waiting = unsealed(context)
    assert waiting >= 1  # the seeding's events and the key's
    assert "audit events sealed 0" in run("worker", "--once", "--seal-every", "0")
    assert unsealed(context) == waiting
    assert f"audit events sealed {waiting}" in run("worker", "--once")
    assert unsealed(context) == 0
    assert verify_audit(uow=context.uow()).ok
    run("worker", "--once", "--seal-every", "-1", code=2)
