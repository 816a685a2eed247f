"""decisions: an approved decision's INSERT maintains four indexes instead of seven

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 17:00:00

- The unique order id is kept as it was (same name, same columns, the same guarantee), with `order_id`
  first: that index then also finds an order id across customers (GET /v1/decisions/{order_id}, a key
  not limited to customers), which `ix_decisions_order` was kept for; that index goes.
- The review queue's index holds only deferred decisions (partial, WHERE state = 'deferred'): every
  query that uses it asks for deferred decisions and nothing else, and an approved or blocked decision
  (nearly all of them) is no longer written into it. It serves the due deferrals too (ordered by
  decided_at, id, as that query is), which is all `ix_decisions_deferred` was read for (the planner
  chose the queue's index for it already): that index goes.

Measured (bench/pg_statement_cost.py, docs/performance.md): three B-tree insertions fewer per decision.
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

DEFERRED = sa.text("state = 'deferred'")


def upgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_decisions_queue")
        batch_op.drop_index("ix_decisions_deferred")
        batch_op.drop_index("ix_decisions_order")
        batch_op.drop_constraint("uq_decisions_customer_order", type_="unique")
        batch_op.create_unique_constraint("uq_decisions_customer_order", ["order_id", "customer_code"])
        batch_op.create_index(
            "ix_decisions_queue", ["decided_at", "id"], postgresql_where=DEFERRED, sqlite_where=DEFERRED
        )


def downgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_decisions_queue")
        batch_op.drop_constraint("uq_decisions_customer_order", type_="unique")
        batch_op.create_unique_constraint("uq_decisions_customer_order", ["customer_code", "order_id"])
        batch_op.create_index("ix_decisions_order", ["order_id"], unique=False)
        batch_op.create_index("ix_decisions_deferred", ["state", "deferral_expires_at"], unique=False)
        batch_op.create_index("ix_decisions_queue", ["state", "decided_at", "id"], unique=False)
