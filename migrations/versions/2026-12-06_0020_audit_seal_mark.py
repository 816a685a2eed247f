"""audit: the sealer's mark; on PostgreSQL the seq taken by the trigger, whatever a writer sends

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 04:00:00

The sealer used to look for unsealed events among the last 10,000 seqs each pass, and over the whole
trail every few minutes (the worker) and every minute (`creditctl expire`, from cron): a read whose cost
grows with the trail for ever. It now keeps a mark in `audit_seal_mark` (one row): every event up to
`seq` is sealed or was refused, so a pass reads only above it; and a horizon an earlier pass read
(`horizon_seq`, and the writers then in flight, `horizon_pending`), the next mark once they have ended.

The horizon is exact only if no writer can put an event below it later. On PostgreSQL:
- the seq is no longer the column's default but the BEFORE INSERT trigger's, which overwrites any seq
  a writer sends (as it does `at`): no writer can choose a seq below the mark;
- the sequence keeps CACHE 1 (the sealer checks): a session's cached seqs would be handed out later,
  below a value already read.
SQLite serialises writers (every transaction is BEGIN IMMEDIATE) and never reuses a seq
(AUTOINCREMENT): the highest committed seq is already such a bound.

Every deployment's mark starts at 0: the first two passes after the upgrade read the whole trail.
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
        sa.Column("horizon_seq", sa.BigInteger(), nullable=True),
        sa.Column("horizon_pending", sa.Text(), nullable=True),
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
