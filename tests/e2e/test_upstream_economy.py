"""The upstream's economy across instances: two `creditctl serve` processes on one PostgreSQL database,
16 clients ordering for 3 customers through both, the recording Haier emulator counting balance calls.
Every snapshot is made stale first, so the opening orders all need a fetch at once; then the load runs for
six refresh windows of 2 s. At most one balance call per customer per window, and the run must show the
refreshes happened (a call in most windows), from both instances, with decisions made on both: otherwise
it proves nothing. Bounded: about 15 s of load, under 60 s with the set-up. The longer form with figures
is bench/upstream_economy.py."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_URL, _postgres_or_skip
from tests.e2e.upstream_economy import Settings, Stack, describe

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

SEED = int(os.environ.get("CREDITCTL_TEST_SEED") or random.randrange(1_000_000))
SETTINGS = Settings(customers=3, clients=16, instances=2, workers=2, refresh_after_s=2, windows=6, seed=SEED)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    _postgres_or_skip()
    s = Stack(SETTINGS, PG_URL, tmp_path)
    try:
        s.start()
        yield s
    finally:
        s.close()


def test_two_instances_make_at_most_one_balance_call_per_customer_per_refresh_window(stack: Stack) -> None:
    result = stack.run()
    report = "\n".join(describe(result))
    print("\n" + report)
    context = f"(CREDITCTL_TEST_SEED={SEED}, logs in {stack.tmp})\n{report}"

    assert result.counted == len(result.calls), f"the emulator's count and its record differ {context}"
    by_instance = result.decisions_by_instance()
    assert len(by_instance) == SETTINGS.instances and min(by_instance.values()) > 0, context
    failed = {k: n for k, n in result.answers.items() if k.split()[1] not in ("200", "201")}
    assert not failed, f"requests not decided: {failed} {context}"
    # Several windows were really refreshed, for every customer, and not by one instance alone.
    assert set(result.windows) == set(stack.customers), context
    assert min(len(w) for w in result.windows.values()) >= SETTINGS.windows - 2, context
    assert all(n > 0 for n in result.upstream_calls_by_instance), f"one instance never fetched {context}"
    assert result.max_per_window == 1, f"more than one balance call in a customer's window {context}"
