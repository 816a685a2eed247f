"""reports: upstream calls, one row per call sent to the upstream

Revision ID: 0011
Revises: 0006
Create Date: 2026-12-01 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'upstream_calls',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('called_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('operation', sa.String(length=16), nullable=False),
        sa.Column('config', sa.String(length=64), nullable=False),
        sa.Column('customer_code', sa.String(length=32), nullable=True),
        sa.Column('status', sa.Integer(), nullable=True),
        sa.Column('latency_ms', sa.Float(), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('error_code', sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_upstream_calls')),
    )
    op.create_index('ix_upstream_calls_called', 'upstream_calls', ['called_at'], unique=False)
    op.create_index(
        'ix_upstream_calls_customer', 'upstream_calls', ['customer_code', 'called_at'], unique=False
    )


def downgrade() -> None:
    op.drop_index('ix_upstream_calls_customer', table_name='upstream_calls')
    op.drop_index('ix_upstream_calls_called', table_name='upstream_calls')
    op.drop_table('upstream_calls')
