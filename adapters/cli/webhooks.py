"""`creditctl worker` (delivers the outbox) and `creditctl webhooks ...` (subscriptions, dead letters)."""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

import click

from creditctl.services.context import AppContext, WebhookTools
from creditctl.services.webhook_delivery import deliver_round, prune_delivered, redrive

log = logging.getLogger("creditctl.webhooks")
PRUNE_EVERY_S = 300.0


def _tools(make_context: Callable[[], AppContext]) -> WebhookTools:
    tools = make_context().webhooks
    if tools is None:
        raise click.ClickException("webhooks are not wired in this deployment")
    return tools


def register(cli: click.Group, make_context: Callable[[], AppContext]) -> None:
    @cli.command(help="Deliver webhook events from the outbox (a loop; several workers may share it).")
    @click.option("--once", is_flag=True, help="One round of dispatch and delivery, then exit.")
    @click.option("--idle-s", default=1.0, show_default=True, help="Pause when nothing was due.")
    def worker(once: bool, idle_s: float) -> None:
        t = _tools(make_context)
        stop: list[bool] = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
        pruned_at = 0.0
        while not stop:
            result = deliver_round(store=t.store, notifier=t.notifier, box=t.box, policy=t.policy)
            if time.monotonic() - pruned_at > PRUNE_EVERY_S:
                prune_delivered(store=t.store, policy=t.policy)
                pruned_at = time.monotonic()
            if once:
                click.echo(
                    f"dispatched {result.dispatched} events; delivered {result.delivered}, "
                    f"failed {result.failed}, dead {result.dead}, disabled {len(result.disabled)}"
                )
                return
            if not result.claimed and not result.dispatched:
                time.sleep(idle_s)

    @cli.group(help="Webhook deliveries: counts, dead letters, pruning.")
    def webhooks() -> None: ...

    @webhooks.command("redrive", help="Make dead deliveries (one with --id, else all) pending again.")
    @click.option("--id", "delivery_id", type=int, default=None)
    def webhooks_redrive(delivery_id: int | None) -> None:
        n = redrive(store=_tools(make_context).store, delivery_id=delivery_id)
        click.echo(f"redriven: {n}")
        if delivery_id is not None and not n:
            raise click.ClickException(f"no dead delivery {delivery_id} of an active subscription")

    @webhooks.command("status", help="Deliveries by status and events not yet dispatched, as JSON.")
    def webhooks_status() -> None:
        counts: dict[str, Any] = _tools(make_context).store.counts()
        click.echo(json.dumps(counts, sort_keys=True))

    @webhooks.command("prune", help="Delete deliveries delivered longer ago than the retention period.")
    def webhooks_prune() -> None:
        t = _tools(make_context)
        click.echo(f"pruned: {prune_delivered(store=t.store, policy=t.policy)}")
