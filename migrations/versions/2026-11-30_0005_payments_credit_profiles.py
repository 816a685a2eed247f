"""payments, balance history, credit profiles on the account row, credit limit requests

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_ACCOUNT_COLUMNS = [
    ('payment_max_overdue_days', sa.Integer()),
    ('payment_on_time_ratio_bp', sa.Integer()),
    ('payment_overdue_fen', sa.BigInteger()),
    ('base_credit_limit_fen', sa.BigInteger()),
    ('base_credit_limit_reason', sa.String(length=500)),
    ('average_balance_fen', sa.BigInteger()),
    ('profile_computed_at', sa.DateTime(timezone=True)),
    ('profile_valid_until', sa.DateTime(timezone=True)),
    ('temporary_limit_fen', sa.BigInteger()),
    ('temporary_limit_until', sa.DateTime(timezone=True)),
    ('temporary_limit_request_id', sa.String(length=32)),
]


def upgrade() -> None:
    with op.batch_alter_table('credit_accounts', schema=None) as batch_op:
        for name, type_ in _ACCOUNT_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
    op.create_table(
        'payments',
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('invoice_id', sa.String(length=64), nullable=False),
        sa.Column('amount_fen', sa.BigInteger(), nullable=False),
        sa.Column('due_date', sa.Date(), nullable=False),
        sa.Column('paid_fen', sa.BigInteger(), nullable=False),
        sa.Column('paid_date', sa.Date(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['credit_accounts.id'], name=op.f('fk_payments_account_id_credit_accounts')),
        sa.PrimaryKeyConstraint('account_id', 'invoice_id', name=op.f('pk_payments')),
    )
    op.create_table(
        'payment_changes',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('invoice_id', sa.String(length=64), nullable=False),
        sa.Column('before', sa.Text(), nullable=True),
        sa.Column('after', sa.Text(), nullable=False),
        sa.Column('changed_by', sa.String(length=200), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['credit_accounts.id'], name=op.f('fk_payment_changes_account_id_credit_accounts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_changes')),
    )
    op.create_index('ix_payment_changes_invoice', 'payment_changes', ['account_id', 'invoice_id'], unique=False)
    op.create_table(
        'balance_history',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('balance_fen', sa.BigInteger(), nullable=False),
        sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('source', sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['credit_accounts.id'], name=op.f('fk_balance_history_account_id_credit_accounts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_balance_history')),
    )
    op.create_index('ix_balance_history_account_fetched', 'balance_history', ['account_id', 'fetched_at'], unique=False)
    op.create_table(
        'credit_profile_changes',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('trigger', sa.String(length=32), nullable=False),
        sa.Column('changed_by', sa.String(length=200), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=True),
        sa.Column('grade', sa.String(length=1), nullable=False),
        sa.Column('limit_fen', sa.BigInteger(), nullable=False),
        sa.Column('inputs', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['credit_accounts.id'], name=op.f('fk_credit_profile_changes_account_id_credit_accounts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_profile_changes')),
    )
    op.create_index('ix_credit_profile_changes_account', 'credit_profile_changes', ['account_id', 'id'], unique=False)
    op.create_table(
        'credit_limit_requests',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('customer_code', sa.String(length=32), nullable=False),
        sa.Column('sale_group_code', sa.String(length=32), nullable=False),
        sa.Column('amount_fen', sa.BigInteger(), nullable=False),
        sa.Column('until', sa.DateTime(timezone=True), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('requested_by', sa.String(length=200), nullable=False),
        sa.Column('requested_by_key_id', sa.Integer(), nullable=False),
        sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('decided_by', sa.String(length=200), nullable=True),
        sa.Column('decided_by_key_id', sa.Integer(), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('note', sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['credit_accounts.id'], name=op.f('fk_credit_limit_requests_account_id_credit_accounts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_limit_requests')),
    )
    op.create_index('ix_credit_limit_requests_account', 'credit_limit_requests', ['account_id', 'requested_at'], unique=False)
    op.create_index('ix_credit_limit_requests_status', 'credit_limit_requests', ['status', 'requested_at'], unique=False)


def downgrade() -> None:
    for table in ('credit_limit_requests', 'credit_profile_changes', 'balance_history', 'payment_changes', 'payments'):
        op.drop_table(table)
    with op.batch_alter_table('credit_accounts', schema=None) as batch_op:
        for name, _ in reversed(_ACCOUNT_COLUMNS):
            batch_op.drop_column(name)
