"""Up to when a database's data are complete: the primary's now, or what a streaming replica replayed.

Read before the data it dates (reports, a backtest's history): what is read after it is at least that
fresh, and never claimed fresher (docs/replication.md, "How fresh a report is")."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, text

from creditctl.ports.clock import Clock

# On a replica: the last replayed commit's time; later, when it has replayed everything the primary had
# written when it sent its last message (then every commit before that message's time is here). Both are
# the primary's clock. The receiver's columns are NULL for a role without pg_read_all_stats: then the
# replay time alone, which is older than the truth while the primary is idle, never newer.
_PG_AS_OF = text(
    "SELECT CASE WHEN pg_is_in_recovery() THEN greatest("
    "pg_last_xact_replay_timestamp(), "
    "(SELECT last_msg_send_time FROM pg_stat_wal_receiver WHERE status = 'streaming' "
    "AND latest_end_lsn IS NOT NULL AND pg_last_wal_replay_lsn() >= latest_end_lsn)) "
    "ELSE clock_timestamp() END"
)


def data_as_of(engine: Engine, clock: Clock | None = None) -> datetime | None:
    """The moment `engine`'s data hold every commit up to; None: a replica that cannot tell yet.
    `clock`: the primary's database clock when `engine` is the primary's (a test's stand-in for it)."""
    if clock is not None:
        return clock.now()
    if engine.dialect.name == "sqlite":
        return datetime.now(UTC)  # one file, no replica: the host clock is the database clock
    with engine.connect() as conn:
        value: datetime | None = conn.execute(_PG_AS_OF).scalar_one()
    return None if value is None else value.astimezone(UTC)
