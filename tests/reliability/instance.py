"""One creditctl instance for a reliability test: its balances from a ledger of record (the outside
checker's), its clock, the test's database; a Flask client and an orders key for tests through HTTP."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Engine, update

from adapters.bootstrap import Settings, bootstrap
from adapters.sql.tables import credit_accounts
from adapters.web.app import create_app
from creditctl.ports.clock import Clock
from creditctl.services.api_keys import create_api_key
from creditctl.services.context import AppContext
from creditctl.services.customers import refresh_balances, register_customer
from tests.clocks import SkewedClock
from tests.ledger_upstream import Account, LedgerUpstream
from tests.outside_checker import OutsideBooks

_APP_LOCK = threading.Lock()


@dataclass
class Instance:
    ctx: AppContext
    upstream: LedgerUpstream
    books: OutsideBooks
    engine: Engine
    _app: Any = None

    def client(self) -> FlaskClient:
        """A client of its own (one per thread), on the instance's one app."""
        with _APP_LOCK:  # one app, made once: callers on 50 threads at once made one each, and werkzeug's
            # route compiling (ast) in parallel threads trips CPython 3.11 ("AST constructor recursion depth")
            if self._app is None:
                self._app = create_app(self.ctx, {"TESTING": True})
        return self._app.test_client()

    def another(self, clock: Clock, tmp_path: Path) -> Instance:
        """A second instance on the same database and upstream (and books), with a clock of its own."""
        settings = Settings(
            instance_path=tmp_path / f"instance-{id(clock)}", database_url=str(self.engine.url)
        )
        ctx = bootstrap(settings, balances=self.upstream.provider(clock), clock=clock, engine=self.engine)
        return Instance(ctx, self.upstream, self.books, self.engine)

    def key(self, role: str = "orders") -> str:
        c = self.ctx
        return create_api_key(
            name=f"rel-{role}", role=role, customers=None, uow=c.uow(), clock=c.clock
        ).secret


def start(
    engine: Engine,
    tmp_path: Path,
    accounts: dict[Account, Decimal],
    *,
    clock: Clock | None = None,
    database_clock: Clock | None = None,
    **params: Any,
) -> Instance:
    """Open a ledger per account, register and fetch each customer, set the accounts' params."""
    upstream = LedgerUpstream()
    for (customer, group), money in accounts.items():
        upstream.open_account(customer, group, money)
    clock = clock or SkewedClock(0)
    settings = Settings(instance_path=tmp_path / "instance", database_url=str(engine.url))
    ctx = bootstrap(
        settings, balances=upstream.provider(clock), clock=clock, engine=engine, database_clock=database_clock
    )
    for customer in upstream.customers():
        register_customer(customer, uow=ctx.uow(), clock=clock)
        refresh_balances(customer, scope=None, uow=ctx.uow(), balances=ctx.balances, clock=clock)
    if params:
        with engine.begin() as conn:
            conn.execute(update(credit_accounts).values(params=dict(params)))
    return Instance(ctx, upstream, OutsideBooks(upstream), engine)
