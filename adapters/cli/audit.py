"""`creditctl audit seal | verify | export`: the hash chain sealed, checked, and handed to an auditor."""

from __future__ import annotations

import getpass
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click

from adapters.cli.loop_backoff import LoopBackoff
from creditctl.domain.audit import Actor, ChainReport, cli_actor
from creditctl.domain.audit_anchor import Anchor, parse_anchors
from creditctl.domain.errors import AuditSealConflict
from creditctl.ports.audit_anchor import AnchorSink
from creditctl.services.audit import (
    SealOutcome,
    export_audit,
    seal_audit_outcome,
    verify_audit,
)
from creditctl.services.audit_anchor import anchor_audit
from creditctl.services.context import AppContext

log = logging.getLogger("creditctl.audit")


def operator() -> Actor:
    """The person at the command line, as the audit trail records them ("cli:<user>")."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = "unknown"
    return cli_actor(user)


class Anchorer(threading.Thread):
    """Writes the chain's head (and the hashes since the last anchor) to the sink every `every` seconds,
    in its own thread (a slow receiver holds up neither sealing nor deliveries). A failure (the sink, or
    the database away) is logged at ERROR once and tried again, backing off, from the last anchor it took,
    until it works."""

    def __init__(self, context: AppContext, sink: AnchorSink, every: float) -> None:
        super().__init__(name="audit-anchorer", daemon=True)
        self._context, self._sink, self._every = context, sink, every
        self.stopping = threading.Event()
        self.since: int | None = None
        self._backoff = LoopBackoff(log, f"audit: anchoring to {sink.name}")
        self._wait = every

    def run(self) -> None:
        while not self.stopping.wait(self._wait):
            self.anchor_once()
        self.anchor_once()  # the head as the worker leaves it

    def anchor_once(self) -> Anchor | None:
        try:
            anchor = anchor_audit(uow=self._context.uow(), sink=self._sink, since=self.since)
        except Exception as exc:
            self._wait = max(self._every, self._backoff.failed(exc))
            return None
        self._backoff.succeeded()
        self._wait = self._every
        if anchor is not None:
            self.since = anchor.position
            log.info("audit: anchored %s:%s to %s", anchor.position, anchor.hash, self._sink.name)
        return anchor


def seal_pass(
    context: AppContext, *, full: bool = False, between_pages: Callable[[], None] | None = None
) -> SealOutcome:
    """One pass over what is committed (above the sealer's mark; from the start with `full`). A race
    lost again and again to another sealer (a worker's) leaves the events to that sealer or to the next
    pass, instead of ending a loop that keeps sealing. `between_pages`: see seal_audit_outcome."""
    try:
        return seal_audit_outcome(uow=context.uow(), full=full, between_pages=between_pages)
    except AuditSealConflict:
        log.info("audit: another sealer was sealing the same events; sealing again next time")
        return SealOutcome()


def seal_once(
    context: AppContext, *, full: bool = False, between_pages: Callable[[], None] | None = None
) -> int:
    return seal_pass(context, full=full, between_pages=between_pages).sealed


def register(cli: click.Group, make_context: Callable[[], AppContext]) -> None:
    @cli.group(help="The tamper-evident audit trail.")
    def audit() -> None: ...

    @audit.command(
        "seal",
        help="Link every committed, unsealed event into the hash chain; print the head as POSITION:HASH, "
        "what `audit verify --anchor` takes (the count sealed goes to stderr).",
    )
    @click.option("--every", type=float, default=None, help="Keep sealing, every this many seconds.")
    @click.option(
        "--from-start",
        is_flag=True,
        help="Look for unsealed events over the whole trail, not only above the sealer's mark (after the "
        "mark was moved by hand: verify counts unsealed events that no pass finds).",
    )
    def audit_seal(every: float | None, from_start: bool) -> None:
        _seal(make_context(), every, from_start)

    @audit.command("verify", help="Walk the chain from the start; name the first event whose link breaks.")
    @click.option(
        "--anchor",
        help="Anchors kept outside the database: a JSON-lines FILE (the worker's anchor file, or the bodies "
        "a webhook receiver kept), or POSITION:HASH (what `audit seal` prints; also taken with the words "
        "before it, as in `head POSITION:HASH` of verify's or the console's line). Default: the file "
        "CREDITCTL_AUDIT_ANCHOR names, if it is one.",
    )
    @click.option(
        "--max-unsealed-age",
        type=click.FloatRange(min=0),
        default=300.0,
        show_default=True,
        help="Fail when an event has waited longer than this many seconds for its seal (no sealer running: "
        "until sealed, an event is protected only by the database's permissions).",
    )
    def audit_verify(anchor: str | None, max_unsealed_age: float) -> None:
        _verify(make_context(), anchor, max_unsealed_age)

    @audit.command("anchor", help="Write the chain's head and the hashes since the last anchor to its sink.")
    def audit_anchor() -> None:
        ctx = make_context()
        if ctx.audit_anchor is None:
            raise click.ClickException("no anchor sink: set CREDITCTL_AUDIT_ANCHOR (file:PATH or https://…)")
        anchor = anchor_audit(uow=ctx.uow(), sink=ctx.audit_anchor)
        if anchor is None:
            click.echo(f"nothing new to anchor in {ctx.audit_anchor.name}")
            return
        click.echo(f"anchored {anchor.position}:{anchor.hash} to {ctx.audit_anchor.name}")

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
        for event in export_audit(_utc(since), _utc(until), uow=ctx.uow(), read_uow=ctx.reading_uow()):
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


def _seal(ctx: AppContext, every: float | None, from_start: bool = False) -> None:
    reported, backoff, full = set(), LoopBackoff(log, "audit: sealing"), from_start
    while True:
        try:
            outcome = seal_pass(ctx, full=full)
            full = False  # --every: the first pass from the start, the others above the mark
            with ctx.uow() as uow:
                position, digest = uow.audit.head()
        except Exception as exc:
            if every is None:
                raise  # one seal: the command fails
            time.sleep(max(every, backoff.failed(exc)))  # --every: ride the outage out
            continue
        backoff.succeeded()
        click.echo(f"sealed {outcome.sealed} events; the head (for audit verify --anchor):", err=True)
        click.echo(f"{position}:{digest}")
        for r in outcome.refused:
            if r.seq not in reported:
                reported.add(r.seq)
                click.echo(f"REFUSED event seq {r.seq} ({r.type}): {r.reason}; not sealed", err=True)
        if every is None:
            if outcome.refused:
                sys.exit(1)
            return
        time.sleep(every)


def _verify(ctx: AppContext, anchor: str | None, max_unsealed_age: float) -> None:
    anchors, source = _anchors(anchor, ctx)
    report = verify_audit(uow=ctx.uow(), anchors=anchors)
    against = f"; checked against {len(anchors)} anchors from {source}" if anchors else ""
    for seq, type_, reason in report.refused:
        click.echo(f"REFUSED event seq {seq} ({type_}): {reason}; not sealed", err=True)
    if not report.ok:
        _broken(report)
    age = report.oldest_unsealed_age_s
    waiting = f" (the oldest for {age:.0f} s)" if age is not None else ""
    click.echo(
        f"ok: {report.checked} events sealed and verified, head {report.head_position}:"
        f"{report.head_hash}; {report.unsealed} not sealed yet{waiting}{against}"
    )
    if report.refused:
        sys.exit(1)
    if age is not None and age > max_unsealed_age:
        click.echo(
            f"STALE: events have waited {age:.0f} s for a seal (more than {max_unsealed_age:g} s): "
            "is a sealer running? (creditctl worker, or creditctl audit seal --every 5)",
            err=True,
        )
        sys.exit(1)


def _broken(report: ChainReport) -> None:
    kind = f", {report.broken_type}" if report.broken_type else ""
    seq = f"event seq {report.broken_seq}{kind}" if report.broken_seq is not None else "no event"
    click.echo(
        f"BROKEN at position {report.broken_position} ({seq}): {report.problem}; "
        f"the {report.checked} events before it verify",
        err=True,
    )
    sys.exit(1)


HINT = "--anchor"
# A head as `audit seal` prints it (POSITION:HASH), or copied with the words before it from a line of
# verify ("…, head 12:9f…; 0 not sealed yet") or of an older seal ("sealed 0; head 12:9f…").
KEPT_HEAD = re.compile(r"(?:.*\bhead\s+)?(\d+):([0-9A-Fa-f]*)[\s;,.]*", re.S)


def _anchors(option: str | None, ctx: AppContext) -> tuple[Sequence[Anchor], str]:
    """The anchors to check against, and where they came from."""
    if option is None:
        stored = ctx.audit_anchor.read_back() if ctx.audit_anchor is not None else None
        return (stored or [], ctx.audit_anchor.name if ctx.audit_anchor is not None else "")
    head = KEPT_HEAD.fullmatch(option.strip())
    if head is not None:
        position, digest = head.group(1), head.group(2)
        if len(digest) != 64:
            raise click.BadParameter("expected POSITION:HASH (64 hex digits) or a FILE", param_hint=HINT)
        return [Anchor(int(position), digest.lower())], f"{position}:{digest}"
    path = Path(option)
    try:
        with path.open(encoding="utf-8") as f:
            return parse_anchors(f), str(path)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror or exc}", param_hint=HINT) from None
    except ValueError as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint=HINT) from None


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
