"""The production drill, bounded for CI: one cycle of every fault under load, 100 to 160 s (the long form is
`.venv/bin/python deploy/drill.py`, three cycles by default; tests/e2e/production_drill.py says what runs).

Two `creditctl serve` instances behind nginx (deploy/nginx/creditctl.conf), two `creditctl worker`s, all
through PgBouncer in transaction pooling (deploy/pgbouncer/pgbouncer.ini) to a private PostgreSQL, the Haier
emulator upstream, a load generator in its own process and a webhook receiver. While the upstream is down
for longer than the breaker's cooldown, an instance and a worker are killed with SIGKILL and started again,
slow clients hold connections to the proxy, and PostgreSQL restarts. Afterwards every promise of
Report.problems must hold: both invariant checkers, every 2xx decision in the database and the sealed audit
chain (which verifies), every webhook received, one token fetch per period, the upstream's rate limit,
503 problem+json with Retry-After while PostgreSQL is away, the API and every worker working again within
the stated bounds of its return, with no restart. The figures are printed (run with -s)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.e2e.production_drill import API_RECOVERY_BOUND_S, WORKER_RECOVERY_BOUND_S, Drill, Options

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

SEED = int(os.environ.get("CREDITCTL_TEST_SEED") or random.randrange(1_000_000))


def test_two_instances_behind_nginx_and_pgbouncer_ride_out_every_fault_and_lose_nothing(
    tmp_path: Path,
) -> None:
    report = Drill(tmp_path, Options(cycles=1, threads=4, seed=SEED)).run()
    print(report.figures())
    problems = report.problems(
        api_recovery_bound_s=API_RECOVERY_BOUND_S, worker_recovery_bound_s=WORKER_RECOVERY_BOUND_S
    )
    assert not problems, f"seed {SEED} (CREDITCTL_TEST_SEED={SEED} replays the load):\n" + "\n".join(problems)
