"""console sessions kept by the server (sign-out ends them); SQLite refuses an audit insert over a row

Revision ID: 0012
Revises: 0008
Create Date: 2026-12-01 12:00:00

On SQLite, `INSERT OR REPLACE` deletes the row it conflicts with without firing DELETE triggers (unless
recursive_triggers is on), so an unsealed event could be rewritten in place. A BEFORE INSERT trigger
refuses an insert whose seq (or seal position) is taken. PostgreSQL has no REPLACE; its ON CONFLICT
DO UPDATE fires the UPDATE trigger that already refuses.
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0008'
branch_labels = None
depends_on = None

SQLITE_TAKEN = {
    'audit_events': 'SELECT 1 FROM audit_events WHERE seq = NEW.seq',
    'audit_seals': 'SELECT 1 FROM audit_seals WHERE position = NEW.position OR seq = NEW.seq',
}


def upgrade() -> None:
    op.create_table(
        'console_sessions',
        sa.Column('id_hash', sa.String(length=64), nullable=False),
        sa.Column('key_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['key_id'], ['api_keys.id'], name=op.f('fk_console_sessions_key_id_api_keys')),
        sa.PrimaryKeyConstraint('id_hash', name=op.f('pk_console_sessions')),
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_console_sessions_expires_at', ['expires_at'], unique=False)
    if op.get_bind().dialect.name == 'sqlite':
        for table, taken in SQLITE_TAKEN.items():
            op.execute(
                f'CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} WHEN EXISTS ({taken}) '
                f"BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: a row of {table} cannot be "
                "replaced'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for table in SQLITE_TAKEN:
            op.execute(f'DROP TRIGGER IF EXISTS {table}_no_replace')
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_console_sessions_expires_at')
    op.drop_table('console_sessions')
