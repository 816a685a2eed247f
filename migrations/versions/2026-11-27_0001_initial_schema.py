"""initial schema, and the default rule set of design.md published as version 1

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 03:28:34.992581
"""
import json
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('customers', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_table('customers',
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_customers'))
    )
    op.create_table('outbox',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('topic', sa.String(length=100), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_pending', ['delivered_at', 'created_at'], unique=False)

    op.create_table('rule_sets',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_sets')),
    sa.UniqueConstraint('version', name=op.f('uq_rule_sets_version'))
    )
    op.create_table('credit_accounts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('customer_code', sa.String(length=32), nullable=False),
    sa.Column('sale_group_code', sa.String(length=32), nullable=False),
    sa.Column('sale_group_name', sa.String(length=200), nullable=False),
    sa.Column('payer_account_code', sa.String(length=64), nullable=False),
    sa.Column('payer_account_name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('frozen_reason', sa.String(length=500), nullable=True),
    sa.Column('frozen_by', sa.String(length=200), nullable=True),
    sa.Column('frozen_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('exposure_fen', sa.BigInteger(), nullable=False),
    sa.Column('balance_fen', sa.BigInteger(), nullable=True),
    sa.Column('balance_fetched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('balance_source', sa.String(length=100), nullable=True),
    sa.Column('params', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_code'], ['customers.code'], name=op.f('fk_credit_accounts_customer_code_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_accounts')),
    sa.UniqueConstraint('customer_code', 'sale_group_code', name='uq_credit_accounts_customer_sale_group')
    )
    op.create_table('decisions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('customer_code', sa.String(length=32), nullable=False),
    sa.Column('sale_group_code', sa.String(length=32), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('channel', sa.String(length=64), nullable=True),
    sa.Column('metadata', sa.Text(), nullable=True),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('reasons', sa.Text(), nullable=False),
    sa.Column('actions', sa.Text(), nullable=False),
    sa.Column('facts', sa.Text(), nullable=False),
    sa.Column('balance_fen', sa.BigInteger(), nullable=True),
    sa.Column('balance_fetched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('balance_source', sa.String(length=100), nullable=True),
    sa.Column('exposure_fen', sa.BigInteger(), nullable=False),
    sa.Column('available_fen', sa.BigInteger(), nullable=True),
    sa.Column('credit_limit_fen', sa.BigInteger(), nullable=False),
    sa.Column('credit_grade', sa.String(length=1), nullable=False),
    sa.Column('shortfall_fen', sa.BigInteger(), nullable=True),
    sa.Column('rule_set_id', sa.Integer(), nullable=False),
    sa.Column('rule_set_version', sa.Integer(), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deferral_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rechecks', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['credit_accounts.id'], name=op.f('fk_decisions_account_id_credit_accounts')),
    sa.ForeignKeyConstraint(['rule_set_id'], ['rule_sets.id'], name=op.f('fk_decisions_rule_set_id_rule_sets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_decisions')),
    sa.UniqueConstraint('order_id', name=op.f('uq_decisions_order_id'))
    )
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_index('ix_decisions_customer', ['customer_code', 'decided_at'], unique=False)
        batch_op.create_index('ix_decisions_deferred', ['state', 'deferral_expires_at'], unique=False)

    op.create_table('holds',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('counting', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['credit_accounts.id'], name=op.f('fk_holds_account_id_credit_accounts')),
    sa.ForeignKeyConstraint(['order_id'], ['decisions.order_id'], name=op.f('fk_holds_order_id_decisions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_holds')),
    sa.UniqueConstraint('order_id', name=op.f('uq_holds_order_id'))
    )
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.create_index('ix_holds_account_status_expiry', ['account_id', 'status', 'expires_at'], unique=False)
        batch_op.create_index('ix_holds_open_expiry', ['status', 'expires_at'], unique=False)

    _publish_default_rule_set()


def _publish_default_rule_set() -> None:
    # A frozen copy of the default set as of this revision: later edits to rules/ must not rewrite history.
    document = (Path(__file__).parent.parent / "data" / "default_rule_set_v1.json").read_text()
    json.loads(document)
    table = sa.table(
        "rule_sets",
        sa.column("name", sa.String),
        sa.column("version", sa.Integer),
        sa.column("document", sa.Text),
        sa.column("published_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    op.bulk_insert(table, [{"name": "default", "version": 1, "document": document, "published_at": now}])


def downgrade() -> None:
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_index('ix_holds_open_expiry')
        batch_op.drop_index('ix_holds_account_status_expiry')

    op.drop_table('holds')
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_decisions_deferred')
        batch_op.drop_index('ix_decisions_customer')

    op.drop_table('decisions')
    op.drop_table('credit_accounts')
    op.drop_table('rule_sets')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_pending')

    op.drop_table('outbox')
    op.drop_table('customers')
    op.drop_table('api_keys')
