"""backtests are jobs: a run keeps its rule set document, when it started, its total and a worker's lease;
status "done" is now "succeeded"

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-05 12:00:00

A run left "running" by the synchronous version (a request cut short, by the worker timeout say) has no
lease for anyone to see run out: it ends as failed here, with an error that says so.
"""
import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0015'
branch_labels = None
depends_on = None

INTERRUPTED = "interrupted: started before backtests were jobs, and never finished; ask again"

runs = sa.table(
    'backtest_runs',
    sa.column('id', sa.String),
    sa.column('status', sa.String),
    sa.column('summary', sa.Text),
    sa.column('finished_at', sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table('backtest_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rule_set', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('started_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('total', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('lease_holder', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_backtest_runs_status_created', ['status', 'created_at'], unique=False)
    op.execute("UPDATE backtest_runs SET status = 'succeeded' WHERE status = 'done'")
    conn = op.get_bind()
    now = datetime.now(UTC)
    if conn.dialect.name == 'sqlite':  # stored naive, in UTC, as the application's UtcDateTime does
        now = now.replace(tzinfo=None)
    left = conn.execute(sa.select(runs.c.id, runs.c.summary).where(runs.c.status == 'running')).all()
    for run_id, summary in left:
        document = json.loads(summary) if summary else {}
        document['error'] = INTERRUPTED
        text = json.dumps(document, separators=(',', ':'), ensure_ascii=False, sort_keys=True)
        conn.execute(
            sa.update(runs)
            .where(runs.c.id == run_id)
            .values(status='failed', summary=text, finished_at=now)
        )


def downgrade() -> None:
    op.execute("UPDATE backtest_runs SET status = 'done' WHERE status = 'succeeded'")
    op.execute("UPDATE backtest_runs SET status = 'failed' WHERE status IN ('queued', 'running')")
    with op.batch_alter_table('backtest_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_backtest_runs_status_created')
        batch_op.drop_column('lease_until')
        batch_op.drop_column('lease_holder')
        batch_op.drop_column('total')
        batch_op.drop_column('started_at')
        batch_op.drop_column('rule_set')
