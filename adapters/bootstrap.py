"""The composition root: reads settings, picks adapters, wires them.

The one module allowed to know every adapter."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from dotenv import dotenv_values
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from adapters.anchor.file_anchor_sink import FileAnchorSink
from adapters.anchor.http_anchor_sink import HttpAnchorSink
from adapters.cli.main import CliOps, build_cli
from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.haier.active_config_provider import ActiveConfigHaierProvider
from adapters.haier.config import HaierConfig, HaierConfigError
from adapters.notify.http_notifier import HttpNotifier
from adapters.outbound.url_policy import UrlRefused, check_url
from adapters.sql.account_queue import AccountQueue
from adapters.sql.backtests import SqlBacktestStore
from adapters.sql.balance_reports import SqlSharedBalanceReports
from adapters.sql.console_sessions import SqlConsoleSessions
from adapters.sql.database_clock import SqlDatabaseClock
from adapters.sql.decision_history import SqlDecisionHistory
from adapters.sql.diagnose import explain_database_error
from adapters.sql.engine import POOLER_MODES, make_engine
from adapters.sql.idempotency import reseal_answers
from adapters.sql.kept_connections import kept_for
from adapters.sql.reports import SqlReportQueries, SqlUpstreamCallLog
from adapters.sql.roles import RoleSetupError, role_statements, setup_app_role
from adapters.sql.rule_sets import RuleSetCache
from adapters.sql.secret_box import FernetSecretBox
from adapters.sql.token_store import SqlTokenStore
from adapters.sql.unit_of_work import SqlUnitOfWork
from adapters.sql.upstream_status import SqlSharedUpstreamStatus
from adapters.sql.webhooks import SqlWebhookStore
from adapters.web.logs import configure_logging
from adapters.web.rate_limit import DEFAULT_RATE, RateLimitPolicy, parse_rate
from creditctl.domain.errors import InvalidRequest, NotFound
from creditctl.ports.audit_anchor import AnchorSink
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.clock import Clock, SystemClock
from creditctl.ports.secret_box import SecretBox
from creditctl.ports.turns import NO_TURNS
from creditctl.ports.unit_of_work import UnitOfWork
from creditctl.services.as_of_balances import AsOfBalanceProvider
from creditctl.services.backtest_replay import BacktestPolicy
from creditctl.services.context import AppContext, UpstreamConfigTools, WebhookTools
from creditctl.services.customers import apply_report
from creditctl.services.shared_balances import SharedBalanceProvider
from creditctl.services.upstream_configs import (
    active_config,
    active_config_version,
    open_document,
    reseal_configs,
)
from creditctl.services.webhook_delivery import DeliveryPolicy

if TYPE_CHECKING:
    from flask import Flask

# The web application, the migrations (alembic), the emulator and the upstream check are imported where they
# are used: a `creditctl` command that needs none of them starts in about half the time (each command of the
# README's examples, each e2e test's setup).

TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Every knob, from the environment (a .env file in the working directory is read too)."""

    instance_path: Path
    database_url: str
    # "transaction" when database_url is a transaction pooler (PgBouncer pool_mode=transaction): no
    # server-side prepared statements then. "none" (direct, or a session pooler): psycopg's defaults.
    database_pooler: str = "none"
    balance_provider: str = "fake"
    fake_balances: str | None = None
    allow_loopback_urls: bool = False
    secret_keys: tuple[str, ...] = ()
    workers: int = 2
    threads: int = 8  # per worker process; each process's database pool covers them
    # One account's orders take turns in a process before its row lock, the holder deciding those waiting
    # behind it with its own (adapters.sql.account_queue, creditctl.ports.turns).
    # On as the service runs (CREDITCTL_ACCOUNT_QUEUE, default on); off where Settings is built by hand
    # (the tests), so that their concurrent orders meet on the row lock as many instances' orders do.
    account_queue: bool = False
    log_level: str = "INFO"
    decision_deadline_s: float = 2.0
    cors_origins: tuple[str, ...] = ()
    webhook_max_attempts: int = 8
    webhook_backoff_s: float = 10.0
    webhook_lease_s: float = 60.0
    webhook_retention_s: float = 7 * 86400.0
    webhook_secret_overlap_s: int = 86400
    webhook_timeout_s: float = 10.0
    console_session_hours: float = 8.0
    console_secure_cookie: bool = False
    trusted_proxies: int = 0
    # Per API key, for the instance: its workers share one table (adapters/web/rate_limit.py: why, scope).
    rate_limit: RateLimitPolicy = field(default_factory=lambda: parse_rate(DEFAULT_RATE))
    # Where the worker anchors the audit chain's head: "file:<path>", an https:// URL, or "off".
    audit_anchor: str = "off"
    audit_anchor_every_s: float = 60.0
    audit_anchor_secret: str | None = None
    # The owner's URL for migrations and `creditctl db roles` (PostgreSQL); None: database_url's.
    migrate_database_url: str | None = None
    # A streaming replica (or any read-only copy) for reports, exports and backtests; None: the primary.
    read_database_url: str | None = None
    backtest_lease_s: float = 60.0
    backtest_retention_days: float = 30.0
    extra: Mapping[str, str] = field(default_factory=dict)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from `env` (default: .env overlaid by the process environment)."""
    if env is None:
        env = {**{k: v for k, v in dotenv_values(".env").items() if v is not None}, **os.environ}
    configured = env.get("CREDITCTL_INSTANCE_PATH")
    instance = Path(configured).expanduser().resolve() if configured else default_instance_path(env)
    provider = env.get("CREDITCTL_BALANCE_PROVIDER", "fake")
    if provider not in ("fake", "haier"):
        raise SystemExit(f"CREDITCTL_BALANCE_PROVIDER must be 'fake' or 'haier', not {provider!r}")
    return Settings(
        instance_path=instance,
        database_url=env.get("CREDITCTL_DATABASE_URL") or f"sqlite:///{instance / 'creditctl.db'}",
        database_pooler=_pooler(env.get("CREDITCTL_DATABASE_POOLER", "")),
        balance_provider=provider,
        fake_balances=env.get("CREDITCTL_FAKE_BALANCES") or None,
        allow_loopback_urls=env.get("CREDITCTL_ALLOW_LOOPBACK_URLS", "false").lower() in TRUE,
        secret_keys=tuple(k.strip() for k in env.get("CREDITCTL_SECRET_KEYS", "").split(",") if k.strip()),
        workers=int(env.get("CREDITCTL_WORKERS", "2")),
        threads=int(env.get("CREDITCTL_THREADS", "8")),
        account_queue=_on_off(env, "CREDITCTL_ACCOUNT_QUEUE", default=True),
        log_level=env.get("CREDITCTL_LOG_LEVEL", "INFO").upper(),
        decision_deadline_s=float(env.get("CREDITCTL_DECISION_DEADLINE_S", "2.0")),
        cors_origins=_cors_origins(env.get("CREDITCTL_CORS_ORIGINS", "")),
        webhook_max_attempts=int(env.get("CREDITCTL_WEBHOOK_MAX_ATTEMPTS", "8")),
        webhook_backoff_s=float(env.get("CREDITCTL_WEBHOOK_BACKOFF_S", "10")),
        webhook_lease_s=float(env.get("CREDITCTL_WEBHOOK_LEASE_S", "60")),
        webhook_retention_s=float(env.get("CREDITCTL_WEBHOOK_RETENTION_S", str(7 * 86400))),
        webhook_secret_overlap_s=int(env.get("CREDITCTL_WEBHOOK_SECRET_OVERLAP_S", "86400")),
        webhook_timeout_s=float(env.get("CREDITCTL_WEBHOOK_TIMEOUT_S", "10")),
        console_session_hours=float(env.get("CREDITCTL_CONSOLE_SESSION_HOURS", "8")),  # not money: hours
        console_secure_cookie=env.get("CREDITCTL_CONSOLE_SECURE_COOKIE", "false").lower() in TRUE,
        trusted_proxies=_trusted_proxies(env.get("CREDITCTL_TRUSTED_PROXIES", "0")),
        rate_limit=_rate_limit(env),
        audit_anchor=env.get("CREDITCTL_AUDIT_ANCHOR") or f"file:{instance / 'audit-anchors.jsonl'}",
        audit_anchor_every_s=_positive(env, "CREDITCTL_AUDIT_ANCHOR_EVERY_S", "60"),
        audit_anchor_secret=env.get("CREDITCTL_AUDIT_ANCHOR_SECRET") or None,
        migrate_database_url=env.get("CREDITCTL_MIGRATE_DATABASE_URL") or None,
        read_database_url=_read_url(env.get("CREDITCTL_READ_DATABASE_URL") or None),
        backtest_lease_s=_positive(env, "CREDITCTL_BACKTEST_LEASE_S", "60"),
        backtest_retention_days=_positive(env, "CREDITCTL_BACKTEST_RETENTION_DAYS", "30"),
    )


def _on_off(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("on", "true", "1", "yes"):
        return True
    if raw in ("off", "false", "0", "no"):
        return False
    raise SystemExit(f"{name} must be 'on' or 'off', not {raw!r}")


PROJECT_FOLDER = Path(__file__).resolve().parents[1]


def default_instance_path(env: Mapping[str, str], project: Path = PROJECT_FOLDER) -> Path:
    """The instance folder when CREDITCTL_INSTANCE_PATH is not set, whatever the working folder: `instance`
    in the project's folder when creditctl runs from its checkout (./scripts/setup installs it editable),
    else a per-user folder, $XDG_DATA_HOME/creditctl (~/.local/share/creditctl). A command run from another
    folder therefore finds the database ./scripts/serve made, and never creates an ./instance there."""
    if (project / "pyproject.toml").is_file() and (project / "adapters").is_dir():
        return project / "instance"
    data_home = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "share")
    return Path(data_home).expanduser().resolve() / "creditctl"


def anchor_sink(settings: Settings) -> AnchorSink | None:
    """The sink CREDITCTL_AUDIT_ANCHOR names: file:<path> (relative to the working folder), an http(s)
    URL under the outbound policy, or off/none. Anything else stops the process at start."""
    target = settings.audit_anchor.strip()
    if target.lower() in ("off", "none", ""):
        return None
    if target.startswith("file:"):
        return FileAnchorSink(Path(target.removeprefix("file:")).expanduser().resolve())
    if target.startswith(("https://", "http://")):
        try:
            return HttpAnchorSink(
                target, secret=settings.audit_anchor_secret, allow_loopback=settings.allow_loopback_urls
            )
        except UrlRefused as exc:
            raise SystemExit(f"CREDITCTL_AUDIT_ANCHOR: {exc}") from None
    raise SystemExit(
        f"CREDITCTL_AUDIT_ANCHOR must be file:<path>, an https:// URL or off, not {settings.audit_anchor!r}"
    )


def _positive(env: Mapping[str, str], name: str, default: str) -> float:
    """A setting that must be a number above zero; refused at start otherwise."""
    text = env.get(name, default).strip() or default
    try:
        value = float(text)  # not money: seconds or days of a setting
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):  # not money
        raise SystemExit(f"{name} must be a number above zero (more than 0), not {text!r}")
    return value


MAX_TRUSTED_PROXIES = 5


def _trusted_proxies(value: str) -> int:
    """How many reverse proxies stand in front (0 to MAX_TRUSTED_PROXIES); refused at start otherwise."""
    text = value.strip() or "0"
    if not text.isdigit() or int(text) > MAX_TRUSTED_PROXIES:
        raise SystemExit(
            f"CREDITCTL_TRUSTED_PROXIES must be a whole number from 0 to {MAX_TRUSTED_PROXIES}, not {value!r}"
        )
    return int(text)


def _read_url(value: str | None) -> str | None:
    """A replica is PostgreSQL's: any other URL is refused at start, not discovered at the first report."""
    if value is None:
        return None
    try:
        backend = make_url(value).get_backend_name()
    except ArgumentError:
        backend = ""
    if backend != "postgresql":
        raise SystemExit("CREDITCTL_READ_DATABASE_URL must be a postgresql+psycopg:// URL (a replica)")
    return value


def _cors_origins(value: str) -> tuple[str, ...]:
    if not value.strip():
        return ()  # the default: nothing to parse, and no web framework to import for it
    from adapters.web.cors import parse_origins

    try:
        return parse_origins(value)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc


def _pooler(value: str) -> str:
    mode = value.strip().lower() or "none"
    if mode not in POOLER_MODES:
        raise SystemExit(
            f"CREDITCTL_DATABASE_POOLER must be one of {', '.join(sorted(POOLER_MODES))}, not {value!r} "
            "(statement pooling cannot run the service: its decisions are multi-statement transactions)"
        )
    return mode


_ENGINES: dict[str, Engine] = {}


def engine_for(url: str, threads: int = 8, pooler: str = "none") -> Engine:
    """One engine (and pool) per URL per process, with a connection for every serving thread."""
    if url not in _ENGINES:
        _ENGINES[url] = make_engine(url, threads=threads, pooler=pooler)
    return _ENGINES[url]


def read_engine_for(url: str, threads: int = 8, pooler: str = "none") -> Engine:
    """The read side's engine: its own pool, every transaction BEGIN READ ONLY (psycopg's read_only; no
    session setting, so it holds through PgBouncer's transaction pooling too). Pointed at a primary by
    mistake, a write through it fails instead of landing beside the decision path. CREDITCTL_DATABASE_POOLER
    holds for it too (a replica behind PgBouncer; without one, not preparing costs little)."""
    key = f"read-only {url}"
    if key not in _ENGINES:
        engine = make_engine(url, threads=threads, pooler=pooler)
        _ENGINES[key] = engine.execution_options(postgresql_readonly=True)
    return _ENGINES[key]


def bootstrap(
    settings: Settings | None = None,
    *,
    balances: BalanceProvider | None = None,
    clock: Clock | None = None,
    engine: Engine | None = None,
    database_clock: Clock | None = None,
    refresh_rule_sets: bool = False,
) -> AppContext:
    """Wire the application: real adapters by default, anything passed in instead (tests pass fakes).

    `clock` is this instance's own clock; `database_clock` stands in for the database server's clock
    (tests that move time by hand pass the same fake as both). Without it, the database's clock is read.
    `refresh_rule_sets`: keep the default rule set and the assignments young in a thread of each process
    (the served application: adapters.sql.rule_sets.RuleSetCache)."""
    settings = settings or load_settings()
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    sql = engine or engine_for(settings.database_url, settings.threads, settings.database_pooler)
    clock = clock or SystemClock()
    db_clock = SqlDatabaseClock(sql, override=database_clock)

    def read_rule_sets() -> tuple[int, dict[tuple[str, str], int]]:
        """The cache's refresher: the default version and the assignments, read on a connection of its own."""
        with SqlUnitOfWork(sql, rule_set_cache=cache, database_clock=database_clock) as unit:
            return unit.rule_sets.current()  # type: ignore[attr-defined]

    # On PostgreSQL only: SQLite's reads are local (no round trip to save), and each of its transactions
    # takes the write lock (BEGIN IMMEDIATE), which a refresh would take twice a second.
    refresh = refresh_rule_sets and sql.dialect.name == "postgresql"
    cache = RuleSetCache(refresher=read_rule_sets if refresh else None)

    # Reports, exports and backtests only: reads that tolerate lag and say how fresh they are (as_of).
    reads = sql
    if settings.read_database_url:
        reads = read_engine_for(settings.read_database_url, settings.threads, settings.database_pooler)
    secret_keys = ensure_secret_keys(settings)
    box = FernetSecretBox(secret_keys)

    turns = AccountQueue() if settings.account_queue else NO_TURNS

    kept = kept_for(sql)  # each thread keeps its last unit's connection for its next (PostgreSQL)

    def uow() -> UnitOfWork:
        return SqlUnitOfWork(sql, rule_set_cache=cache, database_clock=database_clock, kept=kept)

    def read_uow() -> UnitOfWork:
        return SqlUnitOfWork(reads, rule_set_cache=cache, database_clock=database_clock)

    def ping_database() -> None:
        with sql.connect() as conn:
            conn.execute(text("SELECT 1"))

    status: dict[str, Any] = {}
    if balances is None:
        balances = _balance_provider(settings, clock, db_clock, sql, box, uow, status, database_clock)
    elif not isinstance(balances, AsOfBalanceProvider | SharedBalanceProvider):
        balances = AsOfBalanceProvider(balances, db_clock)
    balance_source = status.pop("balance_source", None)  # "haier:<active config>", not a readiness probe
    shared_upstream = status.pop("shared_upstream", None)  # every instance's view, not this process's
    return AppContext(
        uow=uow,
        balances=balances,
        clock=clock,
        decision_deadline_s=settings.decision_deadline_s,
        turns=turns,
        checks={"database": ping_database},
        status=status,
        shared_upstream=shared_upstream,
        upstream_configs=haier_config_tools(settings, box),
        balance_source=balance_source,
        decision_history=SqlDecisionHistory(reads, clock=db_clock if reads is sql else None),
        backtests=SqlBacktestStore(sql, db_clock),
        backtest_policy=BacktestPolicy(
            lease_s=settings.backtest_lease_s, retention_s=settings.backtest_retention_days * 86400.0
        ),
        reports=SqlReportQueries(reads, clock=db_clock if reads is sql else None),
        live_reports=SqlReportQueries(sql, clock=db_clock) if reads is not sql else None,
        read_uow=read_uow if reads is not sql else None,
        webhooks=webhook_tools(settings, sql, db_clock, box),
        session_keys=tuple(session_key(k) for k in secret_keys),
        console_sessions=SqlConsoleSessions(sql, db_clock),
        audit_anchor=anchor_sink(settings),
        audit_anchor_every_s=settings.audit_anchor_every_s,
    )


def webhook_tools(
    settings: Settings, engine: Engine, db_clock: SqlDatabaseClock, box: SecretBox
) -> WebhookTools:
    """Subscriptions sealed with the secrets' box, URLs under the Haier URL policy, POSTs guarded."""
    loopback = settings.allow_loopback_urls
    return WebhookTools(
        store=SqlWebhookStore(engine, db_clock),
        notifier=HttpNotifier(allow_loopback=loopback, read_timeout_s=settings.webhook_timeout_s),
        box=box,
        check_url=lambda url: check_url(url, allow_loopback=loopback),
        policy=DeliveryPolicy(
            max_attempts=settings.webhook_max_attempts,
            backoff_s=settings.webhook_backoff_s,
            lease_s=max(settings.webhook_lease_s, settings.webhook_timeout_s + 1),  # outlive a send
            retention_s=settings.webhook_retention_s,
        ),
        secret_overlap_s=settings.webhook_secret_overlap_s,
    )


def _balance_provider(
    settings: Settings,
    clock: Clock,
    db_clock: Clock,
    engine: Engine,
    box: SecretBox,
    uow: Any,
    status: dict[str, Any],
    database_clock: Clock | None = None,
) -> BalanceProvider:
    """Every provider's reports are stamped as of their request, on the database's clock."""
    if settings.balance_provider != "haier":
        return AsOfBalanceProvider(FakeBalanceProvider(path=settings.fake_balances, clock=clock), db_clock)

    def load_active() -> tuple[str, dict[str, Any], Any] | None:
        active = active_config("haier", uow=uow(), box=box)
        return (active.name, active.document, active.updated_at) if active else None

    haier = ActiveConfigHaierProvider(
        load_active,
        load_version=lambda: active_config_version("haier", uow=uow()),
        token_store=SqlTokenStore(engine, box),
        clock=clock,
        allow_loopback=settings.allow_loopback_urls,
        on_call=SqlUpstreamCallLog(engine).record,
    )
    status["haier_breaker"] = haier.breaker_state
    status["balance_source"] = haier.active_source
    status["shared_upstream"] = SqlSharedUpstreamStatus(engine, database_clock=database_clock)
    return SharedBalanceProvider(
        AsOfBalanceProvider(haier, db_clock),
        SqlSharedBalanceReports(engine),
        db_clock,  # leases and report reuse are compared across instances
        on_report=lambda report: apply_report(report, uow=uow()),  # the report row: stored by the provider
    )


def haier_config_tools(settings: Settings, box: SecretBox) -> UpstreamConfigTools:
    """Validation (with the SSRF policy of the settings) and redaction of Haier connection configs."""

    def validate(document: dict[str, Any]) -> HaierConfig:
        try:
            return HaierConfig.from_dict(document, allow_loopback=settings.allow_loopback_urls)
        except HaierConfigError as exc:
            raise InvalidRequest("the Haier config is not valid: see errors", errors=exc.errors) from None

    return UpstreamConfigTools(kind="haier", validate=validate, redact=lambda c: c.redacted(), box=box)


def ensure_secret_keys(settings: Settings) -> tuple[str, ...]:
    """The configured keys, or one generated into the instance folder on first start.

    Several processes may start at once on a fresh instance: the key is written to a private file
    and linked into place, so exactly one key wins and every process reads that one."""
    if settings.secret_keys:
        return settings.secret_keys
    path = settings.instance_path / "secret_keys"
    if not path.exists():
        tmp = path.with_name(f".secret_keys.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won; use its key
        finally:
            tmp.unlink()
    return tuple(k for k in path.read_text().split() if k)


def session_key(secret_key: str) -> str:
    """The key that signs console sessions, derived from one instance secret key: a cookie signature
    never uses the key that encrypts stored secrets as it is."""
    return hmac.new(secret_key.encode(), b"creditctl console session", hashlib.sha256).hexdigest()


def _rate_limit(env: Mapping[str, str]) -> RateLimitPolicy:
    try:
        return parse_rate(
            env.get("CREDITCTL_RATE_LIMIT_PER_KEY", DEFAULT_RATE), env.get("CREDITCTL_RATE_LIMIT_BURST")
        )
    except ValueError as exc:
        raise SystemExit(f"CREDITCTL_RATE_LIMIT_PER_KEY / CREDITCTL_RATE_LIMIT_BURST: {exc}") from None


def create_wsgi_app(
    settings: Settings | None = None,
    config: Mapping[str, Any] | None = None,
    *,
    refresh_rule_sets: bool = True,
) -> Flask:
    """The WSGI application for gunicorn (wsgi.py) and any other WSGI server. `refresh_rule_sets=False`:
    no thread refreshing the rule-set cache (bench/count_statements.py counts only the decisions' own)."""
    from adapters.web.app import create_app

    settings = settings or load_settings()
    configure_logging(settings.log_level)
    web_config = {
        "CREDITCTL_CORS_ORIGINS": settings.cors_origins,
        "CONSOLE_SESSION_HOURS": settings.console_session_hours,
        "SESSION_COOKIE_SECURE": settings.console_secure_cookie,
        "CREDITCTL_TRUSTED_PROXIES": settings.trusted_proxies,
        "CREDITCTL_RATE_LIMIT": settings.rate_limit,
        # one table for every worker process of this instance (adapters/web/rate_limit.py)
        "CREDITCTL_RATE_LIMIT_TABLE": str(settings.instance_path / "rate-limit.table"),
        **(config or {}),
    }
    return create_app(bootstrap(settings, refresh_rule_sets=refresh_rule_sets), web_config)


def check_upstream(settings: Settings, name: str | None, customer: str | None) -> list[dict[str, Any]]:
    """Token and one balance from the named (or active) Haier config, step by step."""
    context = bootstrap(settings)
    tools = context.upstream_configs
    assert tools is not None
    if name is None:
        active = active_config("haier", uow=context.uow(), box=tools.box)
        if active is None:
            raise NotFound("no active Haier config; name one")
        name, document = active.name, active.document
    else:
        with context.uow() as uow:
            stored = uow.upstream_configs.get(name)
        if stored is None:
            raise NotFound(f"no upstream config named {name!r}")
        document = open_document(stored.document, tools.box)
    config = tools.validate(document)
    from adapters.haier.check import run_check

    return run_check(
        config,
        config_name=name,
        clock=context.clock,
        customer_code=customer,
        allow_loopback=settings.allow_loopback_urls,
    )


def reseal_secrets(settings: Settings) -> dict[str, int]:
    """Key rotation: everything sealed is re-encrypted under the newest key."""
    context = bootstrap(settings)
    box = FernetSecretBox(ensure_secret_keys(settings))
    engine = engine_for(settings.database_url, pooler=settings.database_pooler)
    return {
        "configs": reseal_configs(uow=context.uow(), box=box),
        "tokens": SqlTokenStore(engine, box).reseal_all(),
        "webhooks": SqlWebhookStore(engine).reseal_all(box.reseal),
        "idempotent_answers": reseal_answers(engine, box.reseal),
    }


def _owner_url(settings: Settings) -> str:
    """Migrations run as the tables' owner: CREDITCTL_MIGRATE_DATABASE_URL, else the service's URL."""
    return settings.migrate_database_url or settings.database_url


def _app_role(settings: Settings) -> str:
    if settings.migrate_database_url is None:
        raise click.ClickException(
            "set CREDITCTL_MIGRATE_DATABASE_URL to the owner's URL (migrations) and CREDITCTL_DATABASE_URL "
            "to the service's (its user is the role to set up)"
        )
    try:
        return setup_app_role(settings.migrate_database_url, settings.database_url)
    except RoleSetupError as exc:
        raise click.ClickException(str(exc)) from None


def _app_role_sql(settings: Settings) -> list[str]:
    url = make_url(settings.database_url)
    if url.get_backend_name() != "postgresql" or not url.username:
        raise click.ClickException(
            "CREDITCTL_DATABASE_URL is not PostgreSQL with a user: SQLite has no roles"
        )
    # The password is never printed: set it yourself (ALTER ROLE … PASSWORD …) when you run this by hand.
    return role_statements(url.username, None, url.database or "")


def _upgrade_database(url: str) -> None:
    from adapters.sql.migrate import upgrade

    upgrade(url)


def _run_emulator(host: str, port: int) -> None:
    from adapters.haier.emulator import run_emulator

    run_emulator(host, port)


def main() -> None:
    """The `creditctl` console script."""
    ops = CliOps(
        load_settings=load_settings,
        make_context=lambda: bootstrap(load_settings()),
        upgrade_db=lambda: _upgrade_database(_owner_url(load_settings())),
        database_url=lambda: load_settings().database_url,
        configure_logging=configure_logging,
        check_upstream=lambda name, customer: check_upstream(load_settings(), name, customer),
        run_emulator=_run_emulator,
        reseal_secrets=lambda: reseal_secrets(load_settings()),
        setup_app_role=lambda: _app_role(load_settings()),
        app_role_sql=lambda: _app_role_sql(load_settings()),
    )
    try:
        build_cli(ops)()
    except DBAPIError as exc:
        # A command run from another folder meets an empty ./instance database, or an unmigrated one:
        # say which database it used and how to choose one, not a traceback.
        url = load_settings().database_url
        message = explain_database_error(exc, url)
        print(f"Error: {message}", file=sys.stderr)
        raise SystemExit(1) from None
