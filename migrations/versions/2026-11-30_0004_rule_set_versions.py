"""rule sets: drafts, who/why/when published, effective_at; assignments to customers and accounts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rule_sets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("created_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("published_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("effective_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("rolled_back_from", sa.Integer(), nullable=True))
    # Every version published so far stays published, in effect since it was published.
    op.execute(
        "UPDATE rule_sets SET created_at = published_at, updated_at = published_at, "
        "created_by = 'migration', published_by = 'migration', "
        "reason = 'published before rule sets recorded who and why'"
    )
    with op.batch_alter_table("rule_sets", schema=None) as batch_op:
        batch_op.alter_column("created_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.alter_column("created_by", existing_type=sa.String(length=100), nullable=False)
        batch_op.alter_column("updated_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.alter_column("version", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column("published_at", existing_type=sa.DateTime(timezone=True), nullable=True)
    op.create_table(
        "rule_set_assignments",
        sa.Column("customer_code", sa.String(length=32), nullable=False),
        sa.Column("sale_group_code", sa.String(length=32), nullable=False),
        sa.Column("rule_set_id", sa.Integer(), nullable=False),
        sa.Column("assigned_by", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_set_id"], ["rule_sets.id"], name=op.f("fk_rule_set_assignments_rule_set_id_rule_sets")
        ),
        sa.PrimaryKeyConstraint("customer_code", "sale_group_code", name=op.f("pk_rule_set_assignments")),
    )


def downgrade() -> None:
    op.drop_table("rule_set_assignments")
    op.execute("DELETE FROM rule_sets WHERE version IS NULL")
    with op.batch_alter_table("rule_sets", schema=None) as batch_op:
        batch_op.alter_column("published_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.alter_column("version", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("rolled_back_from")
        batch_op.drop_column("effective_at")
        batch_op.drop_column("reason")
        batch_op.drop_column("published_by")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("created_by")
        batch_op.drop_column("created_at")
