"""`creditctl audit seal | verify | export`: the hash chain sealed, checked, and handed to an auditor."""

from __future__ import annotations

import getpass
import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import click

from creditctl.domain.audit import Actor, cli_actor
from creditctl.domain.errors import AuditSealConflict
from creditctl.services.audit import export_audit, seal_audit, verify_audit
from creditctl.services.context import AppContext

log = logging.getLogger("creditctl.audit")


def operator() -> Actor:
    """The person at the command line, as the audit trail records them ("cli:<user>")."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = "unknown"
    return cli_actor(user)


FULL_SEAL_EVERY_S = 300.0  # a full pass (the whole table) this often; quick passes (recent seqs) between


class SealCadence:
    """Repeated sealing: a full pass first and every FULL_SEAL_EVERY_S, quick passes between (their cost
    does not grow with the trail)."""

    def __init__(self) -> None:
        self._last_full: float | None = None

    def tick(self, context: AppContext) -> int:
        now = time.monotonic()
        full = self._last_full is None or now - self._last_full >= FULL_SEAL_EVERY_S
        try:
            sealed = seal_audit(uow=context.uow(), full=full)
        except AuditSealConflict:
            log.info("audit: another sealer was sealing the same events; sealing again next time")
            return 0  # a full pass that lost is tried again on the next tick
        if full:
            self._last_full = now
        return sealed


def seal_once(context: AppContext, *, full: bool = True) -> int:
    """Seal what is committed; a race lost again and again to another sealer (a worker's) leaves the
    events to that sealer or to the next tick, instead of ending a loop that keeps sealing."""
    try:
        return seal_audit(uow=context.uow(), full=full)
    except AuditSealConflict:
        log.info("audit: another sealer was sealing the same events; sealing again next time")
        return 0


def register(cli: click.Group, make_context: Callable[[], AppContext]) -> None:
    @cli.group(help="The tamper-evident audit trail.")
    def audit() -> None: ...

    @audit.command("seal", help="Link every committed, unsealed event into the hash chain; print the head.")
    @click.option("--every", type=float, default=None, help="Keep sealing, every this many seconds.")
    def audit_seal(every: float | None) -> None:
        ctx, cadence = make_context(), SealCadence()
        while True:
            sealed = cadence.tick(ctx)
            with ctx.uow() as uow:
                position, digest = uow.audit.head()
            click.echo(f"sealed {sealed}; head {position}:{digest}")
            if every is None:
                return
            time.sleep(every)

    @audit.command("verify", help="Walk the chain from the start; name the first event whose link breaks.")
    @click.option("--anchor", help="POSITION:HASH seen earlier (a seal's head, an export's last line).")
    @click.option(
        "--max-unsealed-age",
        type=click.FloatRange(min=0),
        default=300.0,
        show_default=True,
        help="Fail when an event has waited longer than this many seconds for its seal (no sealer running: "
        "until sealed, an event is protected only by the database's permissions).",
    )
    def audit_verify(anchor: str | None, max_unsealed_age: float) -> None:
        ctx = make_context()
        report = verify_audit(uow=ctx.uow(), anchor=_anchor(anchor) if anchor else None)
        if report.ok:
            age = report.oldest_unsealed_age_s
            waiting = f" (the oldest for {age:.0f} s)" if age is not None else ""
            click.echo(
                f"ok: {report.checked} events sealed and verified, head {report.head_position}:"
                f"{report.head_hash}; {report.unsealed} not sealed yet{waiting}"
            )
            if age is not None and age > max_unsealed_age:
                click.echo(
                    f"STALE: events have waited {age:.0f} s for a seal (more than {max_unsealed_age:g} s): "
                    "is a sealer running? (creditctl worker, or creditctl audit seal --every 5)",
                    err=True,
                )
                sys.exit(1)
            return
        click.echo(
            f"BROKEN at position {report.broken_position} (event seq {report.broken_seq}): {report.problem}; "
            f"the {report.checked} events before it verify",
            err=True,
        )
        sys.exit(1)

    @audit.command(
        "export", help="Write the sealed events of [--from, --to) as JSON lines with their hashes."
    )
    @click.option(
        "--from",
        "since",
        type=INSTANT,
        default=None,
        help="ISO 8601 date or time; UTC unless it has an offset.",
    )
    @click.option(
        "--to", "until", type=INSTANT, default=None, help="The same, exclusive (e.g. 2027-01-01T00:00+08:00)."
    )
    # lazy=False: an export that finds nothing still empties --out (a lazy file is opened at the first
    # write, so an earlier export's lines would stay and be read as this period's).
    @click.option("--out", type=click.File("w", encoding="utf-8", lazy=False), default="-", show_default=True)
    def audit_export(since: datetime | None, until: datetime | None, out: Any) -> None:
        ctx = make_context()
        count = 0
        for event in export_audit(_utc(since), _utc(until), uow=ctx.uow()):
            line = {
                "position": event.position,
                "seq": event.seq,
                "prev_hash": event.prev_hash,
                "hash": event.hash,
                "payload": event.payload,
            }
            out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
        click.echo(f"exported {count} events", err=True)


def _anchor(text: str) -> tuple[int, str]:
    position, _, digest = text.partition(":")
    if not position.isdigit() or len(digest) != 64:
        raise click.BadParameter("expected POSITION:HASH (64 hex digits)", param_hint="--anchor")
    return int(position), digest.lower()


class Instant(click.ParamType):
    """An ISO 8601 date or time: naive means UTC, an offset ("+08:00", "Z") is honoured, so an auditor in
    Shanghai can ask for the month by its local midnights."""

    name = "instant"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(str(value).strip())
            utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date or time (2026-12-01, 2026-12-01T00:00+08:00)")
        except OverflowError:
            self.fail(f"{value!r} is outside the years 1 to 9999 once made UTC")
        return utc


INSTANT = Instant()


def _utc(moment: datetime | date | None) -> datetime | None:
    if moment is None:
        return None
    assert isinstance(moment, datetime)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
