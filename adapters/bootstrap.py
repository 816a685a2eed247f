"""The composition root: reads settings, picks adapters, wires them.

The one module allowed to know every adapter."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from flask import Flask
from sqlalchemy import Engine, text

from adapters.cli.main import CliOps, build_cli
from adapters.fake.balance_provider import FakeBalanceProvider
from adapters.sql.engine import make_engine
from adapters.sql.migrate import upgrade as upgrade_database
from adapters.sql.rule_sets import RuleSetCache
from adapters.sql.unit_of_work import SqlUnitOfWork
from adapters.web.app import create_app
from adapters.web.logs import configure_logging
from creditctl.ports.balance_provider import BalanceProvider
from creditctl.ports.clock import Clock, SystemClock
from creditctl.services.context import AppContext

TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Every knob, from the environment (a .env file in the working directory is read too)."""

    instance_path: Path
    database_url: str
    balance_provider: str = "fake"
    fake_balances: str | None = None
    allow_loopback_urls: bool = False
    secret_keys: tuple[str, ...] = ()
    workers: int = 2
    log_level: str = "INFO"
    decision_deadline_s: float = 2.0
    extra: Mapping[str, str] = field(default_factory=dict)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from `env` (default: .env overlaid by the process environment)."""
    if env is None:
        env = {**{k: v for k, v in dotenv_values(".env").items() if v is not None}, **os.environ}
    instance = Path(env.get("CREDITCTL_INSTANCE_PATH", "instance")).resolve()
    provider = env.get("CREDITCTL_BALANCE_PROVIDER", "fake")
    if provider not in ("fake", "haier"):
        raise SystemExit(f"CREDITCTL_BALANCE_PROVIDER must be 'fake' or 'haier', not {provider!r}")
    return Settings(
        instance_path=instance,
        database_url=env.get("CREDITCTL_DATABASE_URL") or f"sqlite:///{instance / 'creditctl.db'}",
        balance_provider=provider,
        fake_balances=env.get("CREDITCTL_FAKE_BALANCES") or None,
        allow_loopback_urls=env.get("CREDITCTL_ALLOW_LOOPBACK_URLS", "false").lower() in TRUE,
        secret_keys=tuple(k.strip() for k in env.get("CREDITCTL_SECRET_KEYS", "").split(",") if k.strip()),
        workers=int(env.get("CREDITCTL_WORKERS", "2")),
        log_level=env.get("CREDITCTL_LOG_LEVEL", "INFO").upper(),
        decision_deadline_s=float(env.get("CREDITCTL_DECISION_DEADLINE_S", "2.0")),
    )


_ENGINES: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    """One engine (and pool) per URL per process."""
    if url not in _ENGINES:
        _ENGINES[url] = make_engine(url)
    return _ENGINES[url]


def bootstrap(
    settings: Settings | None = None,
    *,
    balances: BalanceProvider | None = None,
    clock: Clock | None = None,
    engine: Engine | None = None,
) -> AppContext:
    """Wire the application: real adapters by default, anything passed in instead (tests pass fakes)."""
    settings = settings or load_settings()
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    engine = engine or engine_for(settings.database_url)
    clock = clock or SystemClock()
    cache = RuleSetCache()
    if balances is None:
        balances = _balance_provider(settings, clock)

    def ping_database() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    return AppContext(
        uow=lambda: SqlUnitOfWork(engine, rule_set_cache=cache),
        balances=balances,
        clock=clock,
        decision_deadline_s=settings.decision_deadline_s,
        checks={"database": ping_database},
    )


def _balance_provider(settings: Settings, clock: Clock) -> BalanceProvider:
    if settings.balance_provider == "haier":
        raise SystemExit(
            "the haier balance provider is not wired yet (issue 3); use CREDITCTL_BALANCE_PROVIDER=fake"
        )
    return FakeBalanceProvider(path=settings.fake_balances, clock=clock)


def ensure_secret_keys(settings: Settings) -> tuple[str, ...]:
    """The configured keys, or one generated into the instance folder on first start."""
    if settings.secret_keys:
        return settings.secret_keys
    path = settings.instance_path / "secret_keys"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
    return tuple(k for k in path.read_text().split() if k)


def create_wsgi_app(settings: Settings | None = None, config: Mapping[str, Any] | None = None) -> Flask:
    """The WSGI application for gunicorn (wsgi.py) and any other WSGI server."""
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    return create_app(bootstrap(settings), config)


def main() -> None:
    """The `creditctl` console script."""
    ops = CliOps(
        load_settings=load_settings,
        make_context=lambda: bootstrap(load_settings()),
        upgrade_db=lambda: upgrade_database(load_settings().database_url),
        database_url=lambda: load_settings().database_url,
        configure_logging=configure_logging,
    )
    build_cli(ops)()
