"""API keys are issued to an owner; a credit limit request remembers its requester's owner (four eyes
compares owners, not keys)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 10:40:00

A key made before owners existed belongs to its name (two keys created with one name are one person's);
a request made before remembers its requesting key's owner.
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=100), nullable=True))
    op.execute('UPDATE api_keys SET owner = name')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.alter_column('owner', existing_type=sa.String(length=100), nullable=False)
    with op.batch_alter_table('credit_limit_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requested_by_owner', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('decided_by_owner', sa.String(length=200), nullable=True))
    op.execute(
        'UPDATE credit_limit_requests SET requested_by_owner = COALESCE('
        '(SELECT owner FROM api_keys WHERE api_keys.id = credit_limit_requests.requested_by_key_id), '
        'requested_by)'
    )
    op.execute(
        'UPDATE credit_limit_requests SET decided_by_owner = '
        '(SELECT owner FROM api_keys WHERE api_keys.id = credit_limit_requests.decided_by_key_id) '
        'WHERE decided_by_key_id IS NOT NULL'
    )
    with op.batch_alter_table('credit_limit_requests', schema=None) as batch_op:
        batch_op.alter_column('requested_by_owner', existing_type=sa.String(length=200), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('credit_limit_requests', schema=None) as batch_op:
        batch_op.drop_column('decided_by_owner')
        batch_op.drop_column('requested_by_owner')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('owner')
