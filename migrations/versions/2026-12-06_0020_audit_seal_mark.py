"""audit: the sealer's mark, and on PostgreSQL a seq taken only by a writer the database already tracks

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 04:00:00

The sealer used to look for unsealed events among the last 10,000 seqs each pass, and over the whole
trail every few minutes (the worker) and every minute (`creditctl expire`, from cron): a read whose cost
grows with the trail for ever. It now keeps a mark, `audit_seal_mark.seq`: every event up to it is
sealed or was refused, so a pass reads only above it.

The mark may pass a seq only once no transaction can still commit an event with it. On PostgreSQL the
sealer reads the sequence's last value X, then a snapshot S; once every transaction S lists as in flight
has ended, every seq up to X is committed or gone, provided a writer has a transaction id *before* it
takes its seq (otherwise it could take a seq, let the sealer read X and S, and only then get an id that
S does not list). A column default runs before anything else of the INSERT, and PostgreSQL gives the
transaction its id later, when the row is written. So the seq is no longer the column's default: the
BEFORE INSERT trigger that already stamps the database's time first makes sure the transaction has its
id (pg_current_xact_id()), then takes the seq. It overwrites any seq a writer sends, as it does `at`,
so no writer can put an event below the mark. The sequence keeps CACHE 1: a cached sequence hands out
seqs out of order across sessions, and X would bound nothing.

SQLite serialises writers (every transaction is BEGIN IMMEDIATE) and never reuses a seq
(AUTOINCREMENT): the highest committed seq is already such a bound.

Every deployment's mark starts at 0: the first pass after the upgrade reads the whole trail once.
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

PG_STAMP = """
CREATE FUNCTION audit_database_stamp() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    NEW.at := clock_timestamp();
    PERFORM pg_current_xact_id();
    NEW.seq := nextval('{sequence}'::regclass);
    RETURN NEW;
END
$$
"""
PG_TIME = """
CREATE FUNCTION audit_database_time() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    NEW.at := clock_timestamp();
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "audit_seal_mark",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_seal_mark")),
    )
    op.execute("INSERT INTO audit_seal_mark (id, seq) VALUES (1, 0)")
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    sequence = bind.execute(sa.text("SELECT pg_get_serial_sequence('audit_events', 'seq')")).scalar_one()
    op.execute(f"ALTER SEQUENCE {sequence} CACHE 1")
    op.execute(PG_STAMP.format(sequence=sequence))
    op.execute("DROP TRIGGER audit_events_database_time ON audit_events")
    op.execute("DROP FUNCTION audit_database_time()")
    op.execute(
        "CREATE TRIGGER audit_events_database_stamp BEFORE INSERT ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION audit_database_stamp()"
    )
    op.execute("ALTER TABLE audit_events ALTER COLUMN seq DROP DEFAULT")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        sequence = bind.execute(sa.text("SELECT pg_get_serial_sequence('audit_events', 'seq')")).scalar_one()
        op.execute(f"ALTER TABLE audit_events ALTER COLUMN seq SET DEFAULT nextval('{sequence}'::regclass)")
        op.execute("DROP TRIGGER audit_events_database_stamp ON audit_events")
        op.execute("DROP FUNCTION audit_database_stamp()")
        op.execute(PG_TIME)
        op.execute(
            "CREATE TRIGGER audit_events_database_time BEFORE INSERT ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_database_time()"
        )
    op.drop_table("audit_seal_mark")
