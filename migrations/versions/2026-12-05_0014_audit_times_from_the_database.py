"""audit events take their time from the database at insert, never from the writer

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 12:00:00

PostgreSQL: a BEFORE INSERT trigger overwrites `at` with clock_timestamp(), the moment of the INSERT
itself (not now(), the transaction's start: the events of one transaction keep their order, and an
event's time is as close as it can be to its commit, which is what the sealer's tolerance measures).
Whatever a writer sends is replaced, so a role with INSERT only cannot back-date an event; only a
transaction held open can make an event old, and the sealer refuses one older than the chain by more
than its tolerance. The function pins its search_path, so no schema of a writer's can stand in for
clock_timestamp().

SQLite cannot change a row in a BEFORE trigger: a BEFORE INSERT trigger refuses an insert whose `at` is
not the database's time of that statement (`'now'` is the same for every call within one statement; the
service inserts that very expression). SQLite has no roles: anyone who can write the file can drop the
trigger, so on SQLite this stops mistakes and code paths, not an operator.

Events written before this revision keep the time their writer gave (the database's, read in the same
transaction): their payload already holds that time and is hashed as stored.
"""
from alembic import op

revision = '0014'
down_revision = "0013"
branch_labels = None
depends_on = None

PG_TIME = """
CREATE FUNCTION audit_database_time() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    NEW.at := clock_timestamp();
    RETURN NEW;
END
$$
"""

# The same text SQLAlchemy stores for a UTC datetime on SQLite ('YYYY-MM-DD HH:MM:SS.ffffff'), to the ms.
SQLITE_NOW = "(strftime('%Y-%m-%d %H:%M:%S', 'now') || substr(strftime('%f', 'now'), 3) || '000')"


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(PG_TIME)
        op.execute(
            'CREATE TRIGGER audit_events_database_time BEFORE INSERT ON audit_events '
            'FOR EACH ROW EXECUTE FUNCTION audit_database_time()'
        )
        op.execute('ALTER TABLE audit_events ALTER COLUMN at SET DEFAULT clock_timestamp()')
    else:
        op.execute(
            'CREATE TRIGGER audit_events_database_time BEFORE INSERT ON audit_events '
            f'WHEN NEW.at IS NOT {SQLITE_NOW} '
            "BEGIN SELECT RAISE(ABORT, 'the audit trail takes its times from the database: an event''s "
            "at must be the time of its INSERT'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE audit_events ALTER COLUMN at DROP DEFAULT')
        op.execute('DROP TRIGGER IF EXISTS audit_events_database_time ON audit_events')
        op.execute('DROP FUNCTION IF EXISTS audit_database_time()')
    else:
        op.execute('DROP TRIGGER IF EXISTS audit_events_database_time')
