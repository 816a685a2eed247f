"""order ids unique per customer; holds belong to their decision; a recheck's own time

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 01:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('decision_id', sa.String(length=36), nullable=True))
    op.execute(
        "UPDATE holds SET decision_id = (SELECT decisions.id FROM decisions "
        "WHERE decisions.order_id = holds.order_id)"
    )
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.alter_column('decision_id', existing_type=sa.String(length=36), nullable=False)
        batch_op.drop_constraint('fk_holds_order_id_decisions', type_='foreignkey')
        batch_op.drop_constraint('uq_holds_order_id', type_='unique')
        batch_op.create_foreign_key(
            op.f('fk_holds_decision_id_decisions'), 'decisions', ['decision_id'], ['id']
        )
        batch_op.create_unique_constraint(op.f('uq_holds_decision_id'), ['decision_id'])
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rechecked_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint('uq_decisions_order_id', type_='unique')
        batch_op.create_unique_constraint('uq_decisions_customer_order', ['customer_code', 'order_id'])
        batch_op.create_index('ix_decisions_order', ['order_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_decisions_order')
        batch_op.drop_constraint('uq_decisions_customer_order', type_='unique')
        batch_op.create_unique_constraint('uq_decisions_order_id', ['order_id'])
        batch_op.drop_column('rechecked_at')
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('uq_holds_decision_id'), type_='unique')
        batch_op.drop_constraint(op.f('fk_holds_decision_id_decisions'), type_='foreignkey')
        batch_op.create_unique_constraint('uq_holds_order_id', ['order_id'])
        batch_op.create_foreign_key('fk_holds_order_id_decisions', 'decisions', ['order_id'], ['order_id'])
        batch_op.drop_column('decision_id')
