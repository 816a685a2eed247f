"""hold settlements: holds settled in parts, each part counting until a balance includes it

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('settled_fen', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.create_index('ix_holds_account_created', ['account_id', 'created_at', 'id'], unique=False)
    op.create_table(
        'hold_settlements',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('hold_id', sa.String(length=32), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('settlement_id', sa.String(length=64), nullable=True),
        sa.Column('amount_fen', sa.BigInteger(), nullable=False),
        sa.Column('settled_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('counting', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ['account_id'], ['credit_accounts.id'], name=op.f('fk_hold_settlements_account_id_credit_accounts')
        ),
        sa.ForeignKeyConstraint(['hold_id'], ['holds.id'], name=op.f('fk_hold_settlements_hold_id_holds')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_hold_settlements')),
        sa.UniqueConstraint('hold_id', 'settlement_id', name='uq_hold_settlements_hold_settlement'),
    )
    with op.batch_alter_table('hold_settlements', schema=None) as batch_op:
        batch_op.create_index(
            'ix_hold_settlements_account_counting', ['account_id', 'counting', 'settled_at'], unique=False
        )
    # A hold settled before parts existed was settled in full at ended_at: one part, counting as it did.
    op.execute(
        "INSERT INTO hold_settlements (id, hold_id, account_id, settlement_id, amount_fen, settled_at, counting) "
        "SELECT id, id, account_id, NULL, amount_fen, ended_at, counting FROM holds WHERE status = 'settled'"
    )
    op.execute("UPDATE holds SET settled_fen = amount_fen WHERE status = 'settled'")


def downgrade() -> None:
    with op.batch_alter_table('hold_settlements', schema=None) as batch_op:
        batch_op.drop_index('ix_hold_settlements_account_counting')
    op.drop_table('hold_settlements')
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_index('ix_holds_account_created')
        batch_op.drop_column('settled_fen')
