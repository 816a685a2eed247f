"""idempotency records of creating calls; a revision on rule sets (a draft's ETag)

Revision ID: 0015
Revises: 0016
Create Date: 2026-12-05 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('rule_sets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revision', sa.Integer(), server_default='1', nullable=False))
    op.create_table(
        'idempotency_records',
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('owner', sa.String(length=64), nullable=False),
        sa.Column('route', sa.Text(), nullable=False),
        sa.Column('idempotency_key', sa.String(length=255), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('token', sa.String(length=32), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('body', sa.Text(), nullable=True),
        sa.Column('headers', sa.Text(), nullable=True),
        sa.Column('sealed', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('key_hash', name=op.f('pk_idempotency_records')),
    )
    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.create_index('ix_idempotency_records_created_at', ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.drop_index('ix_idempotency_records_created_at')
    op.drop_table('idempotency_records')
    with op.batch_alter_table('rule_sets', schema=None) as batch_op:
        batch_op.drop_column('revision')
