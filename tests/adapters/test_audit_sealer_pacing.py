"""The worker's sealer rests between the pages of a pass by its duty, so that a pass does not take a
core from the servers deciding orders beside it; paced or not, it seals everything committed."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from adapters.bootstrap import Settings
from adapters.cli import audit as cli_audit
from adapters.cli.main import CliOps, build_cli
from adapters.cli.webhooks import SEAL_DUTY, Sealer
from creditctl.domain.audit import SYSTEM
from creditctl.services.audit import seal_audit, seal_audit_outcome, verify_audit
from creditctl.services.context import AppContext

pytestmark = pytest.mark.adapters


class _Stopping:
    """Records each rest instead of sleeping it; `stopped` makes every wait return at once."""

    def __init__(self, stopped: bool = False) -> None:
        self.waits: list[float] = []
        self.stopped = stopped

    def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        return self.stopped

    def set(self) -> None:
        self.stopped = True


class _Ticking:
    """A clock each reading of which is `step` seconds after the one before: every page takes `step`."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def _write(context: AppContext, n: int) -> None:
    with context.uow() as uow:
        for i in range(n):
            uow.audit.append("test.written", at=uow.now(), actor=SYSTEM, subject={"n": i})
        uow.commit()


@pytest.fixture
def pages_of_two(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_audit, "seal_audit_outcome", functools.partial(seal_audit_outcome, batch=2))


def _sealer(context: AppContext, duty: float, stopping: _Stopping) -> Sealer:
    sealer = Sealer(context, every=5.0, duty=duty, clock=_Ticking(0.05))
    sealer.stopping = stopping  # type: ignore[assignment]
    return sealer


@pytest.mark.usefixtures("pages_of_two")
@pytest.mark.parametrize(("duty", "rest"), [(0.2, 0.2), (0.5, 0.05), (1.0, 0.0)])
def test_a_pass_rests_between_pages_in_proportion_to_each_page_and_seals_everything(
    context: AppContext, duty: float, rest: float
) -> None:
    seal_audit(uow=context.uow())  # what the fixtures wrote
    _write(context, 5)
    stopping = _Stopping()
    sealer = _sealer(context, duty, stopping)
    assert sealer.seal_paced() == 5  # pages of 2, 2 and 1: two rests, none after the last
    if rest:
        assert stopping.waits == [pytest.approx(rest), pytest.approx(rest)]  # 0.05 s a page * (1 - d) / d
        assert sealer.rested_s == pytest.approx(2 * rest)
    else:
        assert stopping.waits == []  # duty 1: back to back
    assert verify_audit(uow=context.uow()).unsealed == 0


@pytest.mark.usefixtures("pages_of_two")
def test_a_stopping_worker_does_not_rest_out_the_pass(context: AppContext) -> None:
    seal_audit(uow=context.uow())
    _write(context, 5)
    stopping = _Stopping(stopped=True)
    sealer = _sealer(context, 0.01, stopping)  # each rest would be 4.95 s
    assert sealer.seal_paced() == 5
    assert len(stopping.waits) == 2  # asked, and returned at once


@pytest.mark.parametrize("duty", [0.0, -0.1, 1.5])
def test_a_duty_outside_zero_to_one_is_refused(context: AppContext, duty: float) -> None:
    with pytest.raises(ValueError, match="duty"):
        Sealer(context, every=5.0, duty=duty)


def test_the_worker_command_refuses_a_duty_outside_zero_to_one_and_shows_its_default(
    context: AppContext, sqlite_engine: Engine, tmp_path: Path
) -> None:
    url = str(sqlite_engine.url)
    command = build_cli(
        CliOps(
            load_settings=lambda: Settings(instance_path=tmp_path / "instance", database_url=url),
            make_context=lambda: context,
            upgrade_db=lambda: None,
            database_url=lambda: url,
            configure_logging=lambda level: None,
        )
    )
    for duty in ("0", "1.5", "-1"):
        result = CliRunner().invoke(command, ["worker", "--seal-duty", duty, "--once"])
        assert result.exit_code == 2 and "--seal-duty" in result.output, result.output
    help_text = CliRunner().invoke(command, ["worker", "--help"]).output
    assert "--seal-duty" in help_text and f"default: {SEAL_DUTY}" in help_text
