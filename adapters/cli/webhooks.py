"""`creditctl worker` (delivers the outbox, seals the audit trail, runs queued backtests) and
`creditctl webhooks ...` (subscriptions, dead letters)."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import click

from adapters.cli.audit import Anchorer, seal_once
from adapters.cli.backtest_jobs import BacktestJobs, run_queued
from adapters.cli.loop_backoff import LoopBackoff, summary
from creditctl.services.context import AppContext, WebhookTools
from creditctl.services.idempotency import prune_idempotency_records
from creditctl.services.webhook_delivery import (
    OutcomeNotRecorded,
    RoundResult,
    deliver_round,
    prune_delivered,
    redrive,
)

log = logging.getLogger("creditctl.webhooks")
PRUNE_EVERY_S = 300.0


def _tools(context: AppContext) -> WebhookTools:
    tools = context.webhooks
    if tools is None:
        raise click.ClickException("webhooks are not wired in this deployment")
    return tools


# A pass costs about the same whatever it seals (the head, the window, the newest sealed time, one commit
# and its WAL flush), and a decision that commits behind it waits: at one client, passes each second
# made the p99 1.49x the ceiling's, every 5 s 1.10x (docs/performance.md). What a sealed event gains, an
# anchor outside the database, comes every CREDITCTL_AUDIT_ANCHOR_EVERY_S (60 s) anyway, and readers of
# the trail seal what is committed before they read.
SEAL_EVERY_S = 5.0
# A pass seals what 5 s of orders wrote, a page (1,000 events, some 35 ms of this process's CPU and
# 10 ms of PostgreSQL's on the bench machine) after another. Back to back, a pass held a core for about
# a quarter of a second every 5 s, beside the servers deciding orders on the same machine, and their
# slowest decisions bunched in and just after those bursts (bench/tail_sources.py: the slowest 2 % four
# times as often within 50 ms of a pass as the fastest half). Paced, a pass works at most this share of
# its time and rests between pages, as PostgreSQL's autovacuum pauses by its cost limit: the same work
# spread over a second or so. At 0.2 a sealer still seals ~5,000 events a second of pass, several times
# what the deciding servers beside it write.
SEAL_DUTY = 0.2


class Sealer(threading.Thread):
    """Seals the audit trail every `every` seconds beside the delivery loop, in its own thread: a round
    may wait on slow receivers (a timeout per POST), and the chain should not wait with it. A failure
    (the database away) is logged once and tried again, backing off, until it works.

    `duty` (0 < duty <= 1): within a pass, after a page that took t seconds, rest t * (1 - duty) / duty
    before the next one (1: no rest)."""

    def __init__(
        self,
        context: AppContext,
        every: float,
        duty: float = SEAL_DUTY,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name="audit-sealer", daemon=True)
        if not 0 < duty <= 1:
            raise ValueError(f"duty must be in (0, 1], not {duty}")
        self._context, self._every, self._duty, self._clock = context, every, duty, clock
        self._page_began = 0.0
        self.stopping = threading.Event()
        self.rested_s = 0.0  # between pages, since the thread began (tests, diagnostics)

    def run(self) -> None:
        backoff = LoopBackoff(log, "audit: sealing")
        wait = self._every
        while not self.stopping.wait(wait):
            try:
                self.seal_paced()
            except Exception as exc:
                wait = max(self._every, backoff.failed(exc))
            else:
                backoff.succeeded()
                wait = self._every

    def seal_paced(self) -> int:
        """One pass, resting between its pages by the duty."""
        self._page_began = self._clock()
        return seal_once(self._context, between_pages=self._rest)

    def _rest(self) -> None:
        worked = self._clock() - self._page_began
        rest = worked * (1 - self._duty) / self._duty
        if rest > 0:
            self.stopping.wait(rest)  # a stopping worker ends the pass without resting out
            self.rested_s += rest
        self._page_began = self._clock()


def register(cli: click.Group, make_context: Callable[[], AppContext]) -> None:
    @cli.command(
        help="Deliver webhook events from the outbox, seal the audit trail, anchor its head outside the "
        "database and run queued backtests (a loop; several workers may share all four)."
    )
    @click.option(
        "--once",
        is_flag=True,
        help="One round of dispatch and delivery (and a seal), every queued backtest, then exit.",
    )
    @click.option("--idle-s", default=1.0, show_default=True, help="Pause when nothing was due.")
    @click.option(
        "--seal-every",
        type=click.FloatRange(min=0),
        default=SEAL_EVERY_S,
        show_default=True,
        help="Seal committed audit events into the hash chain every this many seconds (0: never).",
    )
    @click.option(
        "--seal-duty",
        type=click.FloatRange(min=0, max=1, min_open=True),
        default=SEAL_DUTY,
        show_default=True,
        help="Within a sealing pass, work at most this share of the time, resting between pages of 1,000 "
        "events (1: no rest), so that a pass does not take a core from the servers beside it.",
    )
    def worker(once: bool, idle_s: float, seal_every: float, seal_duty: float) -> None:
        context = make_context()
        if once:
            _one_round(context, seal_every)
        else:
            _loop(context, idle_s, seal_every, seal_duty)

    @cli.group(help="Webhook deliveries: counts, dead letters, pruning.")
    def webhooks() -> None: ...

    @webhooks.command("redrive", help="Make dead deliveries (one with --id, else all) pending again.")
    @click.option("--id", "delivery_id", type=int, default=None)
    def webhooks_redrive(delivery_id: int | None) -> None:
        n = redrive(store=_tools(make_context()).store, delivery_id=delivery_id)
        click.echo(f"redriven: {n}")
        if delivery_id is not None and not n:
            raise click.ClickException(f"no dead delivery {delivery_id} of an active subscription")

    @webhooks.command("status", help="Deliveries by status and events not yet dispatched, as JSON.")
    def webhooks_status() -> None:
        counts: dict[str, Any] = _tools(make_context()).store.counts()
        click.echo(json.dumps(counts, sort_keys=True))

    @webhooks.command("prune", help="Delete deliveries delivered longer ago than the retention period.")
    def webhooks_prune() -> None:
        t = _tools(make_context())
        click.echo(f"pruned: {prune_delivered(store=t.store, policy=t.policy)}")


def _one_round(context: AppContext, seal_every: float) -> None:
    t = _tools(context)
    try:
        result = deliver_round(store=t.store, notifier=t.notifier, box=t.box, policy=t.policy)
    except OutcomeNotRecorded as exc:
        raise click.ClickException(
            f"{exc} ({summary(exc.__cause__ or exc)}); it is sent again when its lease ends"
        ) from None
    prune_delivered(store=t.store, policy=t.policy)
    prune_idempotency_records(uow=context.uow())
    sealed = seal_once(context) if seal_every else 0
    if context.audit_anchor is not None:
        Anchorer(context, context.audit_anchor, context.audit_anchor_every_s).anchor_once()
    click.echo(
        f"dispatched {result.dispatched} events; delivered {result.delivered}, "
        f"failed {result.failed}, dead {result.dead}, disabled {len(result.disabled)}; "
        f"audit events sealed {sealed}"
    )
    ran = run_queued(context)
    click.echo(f"backtests run {len(ran)}" + "".join(f"; {r.id} {r.status}" for r in ran))


def _loop(context: AppContext, idle_s: float, seal_every: float, seal_duty: float = SEAL_DUTY) -> None:
    """Deliver until SIGTERM, pruning now and then, with the sealer and the backtest job loop beside it."""
    t = _tools(context)
    stop: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    sealer = Sealer(context, seal_every, seal_duty) if seal_every else None
    if sealer is not None:
        sealer.start()
    sink = context.audit_anchor
    anchorer = Anchorer(context, sink, context.audit_anchor_every_s) if sink is not None else None
    if anchorer is not None:
        anchorer.start()
    jobs = BacktestJobs(context, idle_s)
    jobs.start()
    pruned_at = 0.0
    backoff = LoopBackoff(log, "webhooks: delivering")
    unwritten: list[OutcomeNotRecorded] = []
    try:
        while not stop:
            try:
                result = _deliver(t, unwritten)
                if time.monotonic() - pruned_at > PRUNE_EVERY_S:
                    prune_delivered(store=t.store, policy=t.policy)
                    prune_idempotency_records(uow=context.uow())  # Idempotency-Key records past 24 h
                    pruned_at = time.monotonic()
            except Exception as exc:  # the database away (or a bug): this loop keeps going, backing off
                time.sleep(backoff.failed(exc))
                continue
            backoff.succeeded()
            if not result.claimed and not result.dispatched:
                time.sleep(idle_s)
    finally:
        jobs.stopping.set()  # a run being replayed stops after its batch, and ends as failed
        if sealer is not None:
            sealer.stopping.set()
            sealer.join(timeout=30)
        if anchorer is not None:  # after the sealer: its last anchor holds what the sealer sealed last
            anchorer.stopping.set()
            anchorer.join(timeout=30)
        jobs.join(timeout=30)


def _deliver(t: WebhookTools, unwritten: list[OutcomeNotRecorded]) -> RoundResult:
    """First write what receivers answered while the database was away (else their deliveries would fall
    due again and be sent twice), then one round."""
    while unwritten:
        unwritten[0].record()
        unwritten.pop(0)
    try:
        return deliver_round(store=t.store, notifier=t.notifier, box=t.box, policy=t.policy)
    except OutcomeNotRecorded as exc:
        unwritten.append(exc)
        raise
