"""Reliability item 9, end to end: `creditctl worker` killed with SIGKILL in the middle of a delivery
loses no event; a restarted worker delivers everything once the dead worker's lease has run out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import pytest

from adapters.bootstrap import bootstrap, load_settings
from creditctl.services.webhooks import create_subscription
from tests.e2e.served import wait_for
from tests.webhook_receiver import Receiver, running

pytestmark = pytest.mark.e2e

CREDITCTL = Path(sys.executable).with_name("creditctl")


def test_a_worker_killed_mid_delivery_loses_no_event(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CREDITCTL_INSTANCE_PATH": str(tmp_path / "instance"),
        "CREDITCTL_DATABASE_URL": f"sqlite:///{tmp_path / 'creditctl.db'}",
        "CREDITCTL_ALLOW_LOOPBACK_URLS": "true",
        "CREDITCTL_WEBHOOK_TIMEOUT_S": "1",
        "CREDITCTL_WEBHOOK_LEASE_S": "2",
        "CREDITCTL_WEBHOOK_BACKOFF_S": "0.2",
    }
    subprocess.run([CREDITCTL, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=60)
    context = bootstrap(load_settings(env))
    tools = context.webhooks
    assert tools is not None
    receiver = Receiver("")
    workers: list[subprocess.Popen[bytes]] = []
    with running(receiver):
        receiver.secret = create_subscription(
            receiver.url,
            ["upstream.down"],
            store=tools.store,
            box=tools.box,
            check_url=tools.check_url,
        ).secret
        ids = [uuid4().hex for _ in range(20)]
        with context.uow() as uow:
            for event_id in ids:
                uow.outbox.add(event_id=event_id, topic="upstream.down", payload={}, now=uow.now())
            uow.commit()
        receiver.stall.set()  # the first POST hangs: the worker is mid-delivery
        try:
            workers.append(subprocess.Popen([CREDITCTL, "worker", "--idle-s", "0.1"], env=env))
            wait_for(receiver.stalled.is_set, 30, "the worker's first POST")
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(timeout=10)
            receiver.stall.clear()
            assert not receiver.processed
            workers.append(subprocess.Popen([CREDITCTL, "worker", "--idle-s", "0.1"], env=env))
            wait_for(lambda: len(receiver.processed) == len(ids), 30, "every event at the receiver")
        finally:
            for w in workers:
                if w.poll() is None:
                    w.send_signal(signal.SIGTERM)
                    w.wait(timeout=10)
    assert set(receiver.processed) == set(ids)
    assert receiver.bad_signatures == 0 and not receiver.duplicates
    assert tools.store.counts().get("delivered") == len(ids)
