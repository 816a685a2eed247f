"""backtests: runs and their changed orders; decisions by decision time

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'backtest_runs',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('requested_by', sa.String(length=200), nullable=False),
        sa.Column('rule_set_name', sa.String(length=100), nullable=False),
        sa.Column('period_from', sa.DateTime(timezone=True), nullable=False),
        sa.Column('period_to', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('summary', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_backtest_runs')),
    )
    op.create_table(
        'backtest_changes',
        sa.Column('run_id', sa.String(length=36), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('order_id', sa.String(length=64), nullable=False),
        sa.Column('customer_code', sa.String(length=32), nullable=False),
        sa.Column('sale_group_code', sa.String(length=32), nullable=False),
        sa.Column('amount_fen', sa.BigInteger(), nullable=False),
        sa.Column('outcome_before', sa.String(length=16), nullable=False),
        sa.Column('outcome_after', sa.String(length=16), nullable=False),
        sa.Column('reasons', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ['run_id'], ['backtest_runs.id'], name=op.f('fk_backtest_changes_run_id_backtest_runs')
        ),
        sa.PrimaryKeyConstraint('run_id', 'seq', name=op.f('pk_backtest_changes')),
    )
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_index('ix_decisions_decided', ['decided_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_decisions_decided')
    op.drop_table('backtest_changes')
    op.drop_table('backtest_runs')
