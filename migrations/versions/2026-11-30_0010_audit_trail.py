"""audit trail: events (insert-only, database-assigned seq) and seals (the hash chain, insert-only)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

TABLES = ('audit_events', 'audit_seals')

PG_REFUSE = """
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def upgrade() -> None:
    op.create_table(
        'audit_events',
        sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
                  nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('type', sa.String(length=64), nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('customer_code', sa.String(length=32), nullable=True),
        sa.Column('sale_group_code', sa.String(length=32), nullable=True),
        sa.Column('order_id', sa.String(length=64), nullable=True),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_events')),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_audit_events_customer', 'audit_events', ['customer_code', 'seq'])
    op.create_index('ix_audit_events_order', 'audit_events', ['order_id'])
    op.create_table(
        'audit_seals',
        sa.Column('position', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('prev_hash', sa.String(length=64), nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.Column('sealed_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('position', name=op.f('pk_audit_seals')),
        sa.UniqueConstraint('seq', name=op.f('uq_audit_seals_seq')),
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(PG_REFUSE)
        for table in TABLES:
            op.execute(
                f'CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} '
                'FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()'
            )
            op.execute(
                f'CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} '
                'FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()'
            )
    else:
        for table in TABLES:
            for verb in ('UPDATE', 'DELETE'):
                op.execute(
                    f'CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} '
                    f"BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: {verb} on {table} refused'); END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in TABLES:
            op.execute(f'DROP TRIGGER IF EXISTS {table}_append_only ON {table}')
            op.execute(f'DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}')
        op.execute('DROP FUNCTION IF EXISTS audit_refuse_change()')
    else:
        for table in TABLES:
            for verb in ('update', 'delete'):
                op.execute(f'DROP TRIGGER IF EXISTS {table}_no_{verb}')
    op.drop_table('audit_seals')
    op.drop_index('ix_audit_events_order', table_name='audit_events')
    op.drop_index('ix_audit_events_customer', table_name='audit_events')
    op.drop_table('audit_events')
