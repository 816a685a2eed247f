"""The schema, as SQLAlchemy Core tables. Money is integer fen (exact on SQLite too, conventions §13)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    literal_column,
    text,
)

from adapters.sql.types import ExactJson, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
# A column that holds values sealed by the SecretBox (whole, or fields inside a JSON document): key
# rotation (`creditctl secrets rotate`, bootstrap.reseal_secrets) must re-encrypt each one, and the secrets
# test finds every sealed value in the database and checks it is in a column marked so.
SEALED = {"sealed": True}

customers = Table(
    "customers",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    Column("created_at", UtcDateTime, nullable=False),
)

credit_accounts = Table(
    "credit_accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_code", String(32), ForeignKey("customers.code"), nullable=False),
    Column("sale_group_code", String(32), nullable=False),
    Column("sale_group_name", String(200), nullable=False, default=""),
    Column("payer_account_code", String(64), nullable=False, default=""),
    Column("payer_account_name", String(200), nullable=False, default=""),
    Column("status", String(16), nullable=False, default="active"),
    Column("frozen_reason", String(500)),
    Column("frozen_by", String(200)),
    Column("frozen_at", UtcDateTime),
    Column("exposure_fen", BigInteger, nullable=False, default=0),
    Column("balance_fen", BigInteger),
    Column("balance_fetched_at", UtcDateTime),
    Column("balance_source", String(100)),
    Column("params", ExactJson),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The credit profile, read with the lock so a decision needs no statement of its own for it.
    Column("payment_max_overdue_days", Integer),
    Column("payment_on_time_ratio_bp", Integer),  # on-time ratio in ten-thousandths (0..10000)
    Column("payment_overdue_fen", BigInteger),
    Column("base_credit_limit_fen", BigInteger),
    Column("base_credit_limit_reason", String(500)),
    Column("average_balance_fen", BigInteger),
    Column("profile_computed_at", UtcDateTime),
    Column("profile_valid_until", UtcDateTime),
    Column("temporary_limit_fen", BigInteger),
    Column("temporary_limit_until", UtcDateTime),
    Column("temporary_limit_request_id", String(32)),
    # balance.low fired and available has not yet gone back above threshold + hysteresis.
    Column("low_balance_alerted", Boolean, nullable=False, default=False, server_default=false()),
    UniqueConstraint("customer_code", "sale_group_code", name="uq_credit_accounts_customer_sale_group"),
)

rule_sets = Table(
    "rule_sets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("version", Integer, unique=True),  # NULL: a draft (editable); else published, immutable
    Column("document", ExactJson, nullable=False),
    Column("published_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("published_by", String(100)),
    Column("reason", String(500)),
    # NULL: in effect once published. The default is the newest version in effect, by the database's clock.
    Column("effective_at", UtcDateTime),
    Column("rolled_back_from", Integer),  # the version a rollback copied
    # Counts the row's changes (an edit, the publication): a draft's ETag. Every UPDATE is conditional on
    # the revision read in the same transaction, so a write that lost a race changes no row.
    Column("revision", Integer, nullable=False, default=1, server_default="1"),
)

# A published version pinned to a customer (sale_group_code "") or to one credit account of it.
rule_set_assignments = Table(
    "rule_set_assignments",
    metadata,
    Column("customer_code", String(32), primary_key=True),
    Column("sale_group_code", String(32), primary_key=True),
    Column("rule_set_id", Integer, ForeignKey("rule_sets.id"), nullable=False),
    Column("assigned_by", String(100), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("assigned_at", UtcDateTime, nullable=False),
)

DEFERRED = text("state = 'deferred'")  # the partial indexes' condition (the review queue, deferrals)

decisions = Table(
    "decisions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("order_id", String(64), nullable=False),
    Column("account_id", Integer, ForeignKey("credit_accounts.id"), nullable=False),
    Column("customer_code", String(32), nullable=False),
    Column("sale_group_code", String(32), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("channel", String(64)),
    Column("metadata", ExactJson),
    Column("fingerprint", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("reasons", ExactJson, nullable=False),
    Column("actions", ExactJson, nullable=False),
    Column("facts", ExactJson, nullable=False),
    Column("balance_fen", BigInteger),
    Column("balance_fetched_at", UtcDateTime),
    Column("balance_source", String(100)),
    Column("exposure_fen", BigInteger, nullable=False),
    Column("available_fen", BigInteger),
    Column("credit_limit_fen", BigInteger, nullable=False),
    Column("credit_grade", String(1), nullable=False),
    Column("shortfall_fen", BigInteger),
    Column("rule_set_id", Integer, ForeignKey("rule_sets.id"), nullable=False),
    Column("rule_set_version", Integer, nullable=False),
    Column("decided_at", UtcDateTime, nullable=False),
    Column("deferral_expires_at", UtcDateTime),
    Column("rechecks", Integer, nullable=False, default=0),
    Column("rechecked_at", UtcDateTime),
    # What people did with the order in the review queue (release, reject, recheck): who, why, facts.
    Column("reviews", ExactJson),
    # The reasons' codes as ",CODE,OTHER,": the review queue filters on them with LIKE on both databases.
    Column("reason_codes", String(1000)),
    # Order ids are the order system's, so unique per customer: two distributors never collide. order_id
    # first: the same index finds an order id whatever its customer (find), with no index of its own.
    UniqueConstraint("order_id", "customer_code", name="uq_decisions_customer_order"),
    Index("ix_decisions_customer", "customer_code", "decided_at"),
    Index("ix_decisions_decided", "decided_at", "id"),  # a backtest's period, oldest first
    # The review queue and the due deferrals, oldest first: deferred decisions only (migration 0019), so an
    # approved decision's INSERT is not written into it. Its queries say DEFERRED_DECISION (below).
    Index("ix_decisions_queue", "decided_at", "id", postgresql_where=DEFERRED, sqlite_where=DEFERRED),
)

# "This decision is deferred", written as a literal: the planner matches the partial indexes above with
# it in a prepared statement's generic plan too (a bound 'deferred' would not match).
DEFERRED_DECISION = decisions.c.state == literal_column("'deferred'")

holds = Table(
    "holds",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", Integer, ForeignKey("credit_accounts.id"), nullable=False),
    Column("decision_id", String(36), ForeignKey("decisions.id"), nullable=False, unique=True),
    Column("order_id", String(64), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("counting", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime),
    # The sum of its settled parts (hold_settlements): what is still held is amount_fen - settled_fen.
    Column("settled_fen", BigInteger, nullable=False, default=0, server_default="0"),
    Index("ix_holds_account_status_expiry", "account_id", "status", "expires_at"),
    Index("ix_holds_open_expiry", "status", "expires_at"),
    Index("ix_holds_account_created", "account_id", "created_at", "id"),
)

# Each settled part of a hold. It counts against the account until a balance as of a moment after
# settled_at (the database's time) arrives. settlement_id is the caller's idempotency handle.
hold_settlements = Table(
    "hold_settlements",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("hold_id", String(32), ForeignKey("holds.id"), nullable=False),
    Column("account_id", Integer, ForeignKey("credit_accounts.id"), nullable=False),
    Column("settlement_id", String(64)),
    Column("amount_fen", BigInteger, nullable=False),
    Column("settled_at", UtcDateTime, nullable=False),
    Column("counting", Boolean, nullable=False),
    UniqueConstraint("hold_id", "settlement_id", name="uq_hold_settlements_hold_settlement"),
    Index("ix_hold_settlements_account_counting", "account_id", "counting", "settled_at"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("role", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("customers", ExactJson),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
    Column("approval_limit_fen", BigInteger),  # the largest order this key may release; None: none
    Column("owner", String(100), nullable=False),  # the person the key is issued to (four eyes)
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("topic", String(100), nullable=False),
    Column("payload", ExactJson, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # Set when the event was turned into one webhook_deliveries row per matching subscription.
    Column("dispatched_at", UtcDateTime),
    Index("ix_outbox_undispatched", "dispatched_at", "created_at"),
)

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("events", ExactJson, nullable=False),
    Column("secret", Text, nullable=False, info=SEALED),  # by the SecretBox (signing needs it in clear)
    Column("previous_secret", Text, info=SEALED),  # still signs until previous_secret_until (rotation)
    Column("previous_secret_until", UtcDateTime),
    Column("status", String(16), nullable=False),  # active, disabled (a 410 from the receiver)
    Column("disabled_reason", String(500)),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(32), ForeignKey("outbox.id"), nullable=False),
    Column("subscription_id", String(32), ForeignKey("webhook_subscriptions.id"), nullable=False),
    Column("status", String(16), nullable=False),  # pending, delivered, dead
    Column("attempts", Integer, nullable=False),
    # Due time; a claim moves it forward by the lease, so a killed worker's claim falls due again.
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("last_status", Integer),
    Column("last_error", String(500)),
    Column("delivered_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("event_id", "subscription_id", name="uq_webhook_deliveries_event_id"),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_subscription", "subscription_id"),
)

upstream_status = Table(
    "upstream_status",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("state", String(8), nullable=False),  # up, down
    Column("consecutive_failures", Integer, nullable=False),
    Column("last_error", String(64)),
    Column("changed_at", UtcDateTime),
)

upstream_configs = Table(
    "upstream_configs",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("kind", String(32), nullable=False, default="haier"),
    Column("document", ExactJson, nullable=False, info=SEALED),  # its secret fields, by the SecretBox
    Column("is_active", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

upstream_tokens = Table(
    "upstream_tokens",
    metadata,
    Column("config_name", String(64), primary_key=True),
    Column("token", Text, info=SEALED),
    Column("scheme", String(16)),
    Column("expires_at", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("lease_holder", String(64)),
    Column("lease_until", UtcDateTime),
)

balance_reports = Table(
    "balance_reports",
    metadata,
    Column("customer_code", String(32), primary_key=True),
    Column("report", ExactJson),
    Column("fetched_at", UtcDateTime),
    Column("source", String(100)),
    Column("lease_holder", String(64)),
    Column("lease_until", UtcDateTime),
    Column("error_code", String(32)),
    Column("error_at", UtcDateTime),
)

payments = Table(
    "payments",
    metadata,
    Column("account_id", Integer, ForeignKey("credit_accounts.id"), primary_key=True),
    Column("invoice_id", String(64), primary_key=True),
    Column("amount_fen", BigInteger, nullable=False),
    Column("due_date", Date, nullable=False),
    Column("paid_fen", BigInteger, nullable=False),
    Column("paid_date", Date),
    Column("updated_at", UtcDateTime, nullable=False),
)

payment_changes = Table(
    "payment_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("credit_accounts.id"), nullable=False),
    Column("invoice_id", String(64), nullable=False),
    Column("before", ExactJson),
    Column("after", ExactJson, nullable=False),
    Column("changed_by", String(200), nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
    Index("ix_payment_changes_invoice", "account_id", "invoice_id"),
)

balance_history = Table(
    "balance_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("credit_accounts.id"), nullable=False),
    Column("balance_fen", BigInteger, nullable=False),
    Column("fetched_at", UtcDateTime, nullable=False),
    Column("source", String(100), nullable=False),
    Index("ix_balance_history_account_fetched", "account_id", "fetched_at"),
)

credit_profile_changes = Table(
    "credit_profile_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("credit_accounts.id"), nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("changed_by", String(200), nullable=False),
    Column("reason", String(500)),
    Column("grade", String(1), nullable=False),
    Column("limit_fen", BigInteger, nullable=False),
    Column("inputs", ExactJson, nullable=False),
    Index("ix_credit_profile_changes_account", "account_id", "id"),
)

credit_limit_requests = Table(
    "credit_limit_requests",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", Integer, ForeignKey("credit_accounts.id"), nullable=False),
    Column("customer_code", String(32), nullable=False),
    Column("sale_group_code", String(32), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("until", UtcDateTime, nullable=False),
    Column("reason", String(500), nullable=False),
    Column("status", String(16), nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("requested_by_key_id", Integer, nullable=False),
    Column("requested_by_owner", String(200), nullable=False),
    Column("requested_at", UtcDateTime, nullable=False),
    Column("decided_by", String(200)),
    Column("decided_by_key_id", Integer),
    Column("decided_by_owner", String(200)),
    Column("decided_at", UtcDateTime),
    Column("note", String(500)),
    Index("ix_credit_limit_requests_account", "account_id", "requested_at"),
    Index("ix_credit_limit_requests_status", "status", "requested_at"),
)

# A backtest run is a job: queued, running (under a worker's lease), then succeeded or failed. `summary`
# holds its counts (so far, while it runs) and its error; `rule_set` the document it replays.
backtest_runs = Table(
    "backtest_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("rule_set_name", String(100), nullable=False),
    Column("period_from", UtcDateTime, nullable=False),
    Column("period_to", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("summary", ExactJson),
    Column("rule_set", ExactJson),
    Column("started_at", UtcDateTime),
    Column("total", BigInteger),
    Column("lease_holder", String(200)),
    Column("lease_until", UtcDateTime),
    Index("ix_backtest_runs_status_created", "status", "created_at"),
)

# A run's changed orders, written in batches while it runs; `seq` is the run's own order (the cursor).
backtest_changes = Table(
    "backtest_changes",
    metadata,
    Column("run_id", String(36), ForeignKey("backtest_runs.id"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("order_id", String(64), nullable=False),
    Column("customer_code", String(32), nullable=False),
    Column("sale_group_code", String(32), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("outcome_before", String(16), nullable=False),
    Column("outcome_after", String(16), nullable=False),
    Column("reasons", ExactJson, nullable=False),
)

# One row per call sent to the upstream (written by the Haier adapter's observation hook, outside any
# decision's transaction), for the upstream health report.
upstream_calls = Table(
    "upstream_calls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("called_at", UtcDateTime, nullable=False),
    Column("operation", String(16), nullable=False),
    Column("config", String(64), nullable=False),
    Column("customer_code", String(32)),
    Column("status", Integer),
    Column("latency_ms", Float, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("error_code", String(32)),
    Index("ix_upstream_calls_called", "called_at"),
    Index("ix_upstream_calls_customer", "customer_code", "called_at"),
)

# The audit trail. Events are inserted by the change they record, in its transaction, without a hash;
# `seq` is the database's. Seals are inserted later by the sealer, one per event, in chain order
# (`position`). Both tables are insert-only: a trigger refuses UPDATE, DELETE (and TRUNCATE on
# PostgreSQL), created by migration 0010. The filter columns repeat fields of `payload`, the hashed text.
AUDIT_SEQ = BigInteger().with_variant(Integer, "sqlite")  # SQLite's rowid alias must be INTEGER

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", AUDIT_SEQ, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("type", String(64), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("customer_code", String(32)),
    Column("sale_group_code", String(32)),
    Column("order_id", String(64)),
    Column("payload", Text, nullable=False),
    Index("ix_audit_events_customer", "customer_code", "seq"),
    Index("ix_audit_events_order", "order_id"),
    sqlite_autoincrement=True,  # never reuse a seq, even the highest one's after a delete
)

audit_seals = Table(
    "audit_seals",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("sealed_at", UtcDateTime, nullable=False),
)

# The sealer's mark, one row (id 1): every event up to `seq` is sealed or was refused, so a pass starts
# above it (bookkeeping, not evidence: verify counts unsealed events over the whole trail without it).
# The service's role may only read and update it (adapters/sql/roles.py).
audit_seal_mark = Table(
    "audit_seal_mark",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("horizon_seq", BigInteger),  # a horizon an earlier pass read: the next mark once it settles
    Column("horizon_pending", Text),  # the writers it waits for, comma-separated (NULL: it never settles)
)

# Every freeze of an account, open (lifted_at null) or lifted: by hand, by the rules, or taken over.
freezes = Table(
    "freezes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("credit_accounts.id"), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("frozen_by", String(200), nullable=False),
    Column("frozen_at", UtcDateTime, nullable=False),
    Column("lifted_at", UtcDateTime),
    Column("lifted_by", String(200)),
    Column("lifted_how", String(16)),
    Column("lift_reason", String(500)),
    Index("ix_freezes_account", "account_id", "id"),
)

# Console sign-ins the server keeps, so that signing out ends the session for every copy of its cookie.
# id_hash is the SHA-256 of the token in the (signed) cookie: a reader of this table cannot sign in.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("key_id", Integer, ForeignKey("api_keys.id"), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Index("ix_console_sessions_expires_at", "expires_at"),
)

# Idempotency-Key records of creating calls (adapters/web/idempotency.py): one per (key owner, route,
# key), keyed by their SHA-256. Inserted in the transaction of the call's change; the answer (status,
# body, a few headers; `sealed`: the body encrypted with the secrets' box) is stored right after.
# Kept RETENTION (24 h) from created_at, then pruned by `creditctl expire` and the worker.
idempotency_records = Table(
    "idempotency_records",
    metadata,
    Column("key_hash", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("route", Text, nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("token", String(32), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("status_code", Integer),
    Column("body", Text, info=SEALED),  # when `sealed`: the answer shows a secret
    Column("headers", ExactJson),
    Column("sealed", Boolean, nullable=False, default=False),
    Index("ix_idempotency_records_created_at", "created_at"),
)
