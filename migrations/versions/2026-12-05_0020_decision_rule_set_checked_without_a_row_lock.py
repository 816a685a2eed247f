"""a decision's rule set is checked by triggers, without locking the rule set's row

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 17:10:00

The foreign key decisions.rule_set_id -> rule_sets.id checked each new decision with SELECT ... FOR KEY
SHARE of the rule set's row: the same row (the version in effect) for every decision. Two decisions in
flight at once then share that lock through a MultiXact, and each further one makes a new MultiXact
holding all of them: at 16 concurrent decisions, one MultiXact/CREATE_ID (~120 bytes of WAL, the members
copied each time, under MultiXactGenLock) plus a Heap/LOCK record on that one page per decision
(pg_waldump --stats), and MultiXact member space used up in proportion, which anti-wraparound vacuums
must then reclaim. The ceiling (bench/ceiling_app.py) inserts into the same table and pays it too.

The same rule, enforced without the lock:
- a decision inserted, or its rule_set_id changed, must name an existing rule set (a BEFORE trigger,
  refusing with foreign_key_violation, 23503, as the key did). At READ COMMITTED (the service's) it reads
  the row without locking it; at any stricter isolation it locks it FOR KEY SHARE as the key did, since
  its snapshot could predate a deletion it has not waited for.
- a rule set deleted, or its id changed, must not be named by any decision: the trigger first takes
  SHARE on decisions, which waits for every transaction that has written decisions to end and keeps new
  writers out until this one ends, then looks. So a decision committed before, or in flight during, the
  deletion is seen, and one written after it finds the rule set gone. Such a deletion must run at READ
  COMMITTED (a later snapshot sees what it waited for); the trigger refuses it otherwise. Nothing in the
  service deletes or renumbers a rule set (published ones are immutable; tests delete theirs).

SQLite writes one transaction at a time, so its triggers only look (RAISE ABORT, the message of its own
foreign keys).
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

FK = "fk_decisions_rule_set_id_rule_sets"

PG_DECISION = """
CREATE FUNCTION decision_rule_set_exists() RETURNS trigger LANGUAGE plpgsql
SET search_path = public, pg_catalog, pg_temp AS $$
BEGIN
    IF current_setting('transaction_isolation') = 'read committed' THEN
        PERFORM 1 FROM rule_sets WHERE id = NEW.rule_set_id;
    ELSE
        PERFORM 1 FROM rule_sets WHERE id = NEW.rule_set_id FOR KEY SHARE;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'decisions.rule_set_id % names no rule set', NEW.rule_set_id
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'fk_decisions_rule_set_id_rule_sets';
    END IF;
    RETURN NEW;
END
$$
"""

PG_RULE_SET = """
CREATE FUNCTION rule_set_unreferenced() RETURNS trigger LANGUAGE plpgsql
SET search_path = public, pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id THEN
        RETURN NEW;
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'a rule set is deleted or renumbered at READ COMMITTED only'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    LOCK TABLE decisions IN SHARE MODE;
    PERFORM 1 FROM decisions WHERE rule_set_id = OLD.id LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'rule set % is named by decisions (decisions.rule_set_id)', OLD.id
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'fk_decisions_rule_set_id_rule_sets';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$
"""

SQLITE_MESSAGE = "'FOREIGN KEY constraint failed: decisions.rule_set_id'"
SQLITE_NAMED = "EXISTS (SELECT 1 FROM decisions WHERE decisions.rule_set_id = OLD.id)"
SQLITE_TRIGGERS = {
    "decisions_rule_set_exists": "BEFORE INSERT ON decisions "
    "WHEN NOT EXISTS (SELECT 1 FROM rule_sets WHERE rule_sets.id = NEW.rule_set_id)",
    "decisions_rule_set_changed": "BEFORE UPDATE OF rule_set_id ON decisions "
    "WHEN NOT EXISTS (SELECT 1 FROM rule_sets WHERE rule_sets.id = NEW.rule_set_id)",
    "rule_sets_deleted_unreferenced": f"BEFORE DELETE ON rule_sets WHEN {SQLITE_NAMED}",
    "rule_sets_renumbered_unreferenced": f"BEFORE UPDATE OF id ON rule_sets "
    f"WHEN NEW.id <> OLD.id AND {SQLITE_NAMED}",
}


def upgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_constraint(FK, type_="foreignkey")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_DECISION)
        op.execute(
            "CREATE TRIGGER decisions_rule_set_exists BEFORE INSERT OR UPDATE OF rule_set_id ON decisions "
            "FOR EACH ROW EXECUTE FUNCTION decision_rule_set_exists()"
        )
        op.execute(PG_RULE_SET)
        op.execute(
            "CREATE TRIGGER rule_sets_unreferenced BEFORE DELETE OR UPDATE OF id ON rule_sets "
            "FOR EACH ROW EXECUTE FUNCTION rule_set_unreferenced()"
        )
    else:
        for name, when in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN SELECT RAISE(ABORT, {SQLITE_MESSAGE}); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS rule_sets_unreferenced ON rule_sets")
        op.execute("DROP FUNCTION IF EXISTS rule_set_unreferenced()")
        op.execute("DROP TRIGGER IF EXISTS decisions_rule_set_exists ON decisions")
        op.execute("DROP FUNCTION IF EXISTS decision_rule_set_exists()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_foreign_key(FK, "rule_sets", ["rule_set_id"], ["id"])
