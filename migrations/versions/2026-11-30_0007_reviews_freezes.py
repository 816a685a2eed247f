"""reviews: approval authority on keys, the review record and reason codes of decisions, freeze history

Revision ID: 0007
Revises: 0010
Create Date: 2026-12-01 12:00:00
"""
import json

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.add_column(sa.Column('approval_limit_fen', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('decisions') as batch:
        batch.add_column(sa.Column('reviews', sa.Text(), nullable=True))
        batch.add_column(sa.Column('reason_codes', sa.String(length=1000), nullable=True))
        batch.create_index('ix_decisions_queue', ['state', 'decided_at', 'id'])
    op.create_table(
        'freezes',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('frozen_by', sa.String(length=200), nullable=False),
        sa.Column('frozen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('lifted_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('lifted_by', sa.String(length=200), nullable=True),
        sa.Column('lifted_how', sa.String(length=16), nullable=True),
        sa.Column('lift_reason', sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ['account_id'], ['credit_accounts.id'], name=op.f('fk_freezes_account_id_credit_accounts')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_freezes')),
    )
    op.create_index('ix_freezes_account', 'freezes', ['account_id', 'id'])
    _backfill()


def _backfill() -> None:
    """The queue's reason filter reads reason_codes: fill it for the orders deferred now; an account
    frozen now gets its open freeze (the history starts with it)."""
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, reasons FROM decisions WHERE state = 'deferred'")).fetchall()
    for decision_id, reasons in rows:
        codes = [r['reason'] for r in json.loads(reasons or '[]')]
        conn.execute(
            sa.text('UPDATE decisions SET reason_codes = :codes WHERE id = :id'),
            {'codes': ',' + ','.join(codes) + ',', 'id': decision_id},
        )
    conn.execute(
        sa.text(
            "INSERT INTO freezes (account_id, reason, frozen_by, frozen_at) "
            "SELECT id, COALESCE(frozen_reason, ''), COALESCE(frozen_by, 'unknown'), "
            "COALESCE(frozen_at, updated_at) FROM credit_accounts WHERE status = 'frozen'"
        )
    )


def downgrade() -> None:
    op.drop_index('ix_freezes_account', table_name='freezes')
    op.drop_table('freezes')
    with op.batch_alter_table('decisions') as batch:
        batch.drop_index('ix_decisions_queue')
        batch.drop_column('reason_codes')
        batch.drop_column('reviews')
    with op.batch_alter_table('api_keys') as batch:
        batch.drop_column('approval_limit_fen')
