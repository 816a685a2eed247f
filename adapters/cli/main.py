"""The `creditctl` command for operators: thin click wrappers over the services."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from adapters.cli import audit, payments, reports, webhooks
from adapters.cli.audit import operator
from creditctl.domain.api_key import Role
from creditctl.domain.audit import canonical_json
from creditctl.domain.decision import Order
from creditctl.domain.errors import CreditctlError, RuleSetRefused
from creditctl.domain.money import MoneyError, fmt, parse_money
from creditctl.ports.balance_provider import BalanceUnavailable
from creditctl.services.api_keys import create_api_key, ensure_api_key, revoke_api_key
from creditctl.services.audit import seal_audit
from creditctl.services.backtest import (
    backtest_of,
    backtest_report,
    changes_csv,
    iter_backtest_changes,
    run_backtest,
)
from creditctl.services.backtest_jobs import fail_stopped_backtests, prune_backtests
from creditctl.services.context import AppContext
from creditctl.services.customers import refresh_balances, register_customer
from creditctl.services.expiry import sweep
from creditctl.services.idempotency import prune_idempotency_records
from creditctl.services.recheck_order import recheck_order
from creditctl.services.rule_sets import problems_of
from creditctl.services.rule_tests import run_case
from creditctl.services.simulate_order import (
    HypotheticalAccount,
    Simulation,
    simulate_order,
    simulate_with_document,
)
from creditctl.services.upstream_configs import get_config, put_config
from rules import RuleSetInvalid, diff_documents, dumps_document, loads_document, parse_rule_set


@dataclass(frozen=True)
class CliOps:
    """What the composition root hands the CLI: how to build the app and run infrastructure steps."""

    load_settings: Callable[[], Any]
    make_context: Callable[[], AppContext]
    upgrade_db: Callable[[], None]
    database_url: Callable[[], str]
    configure_logging: Callable[[str], None]
    check_upstream: Callable[[str | None, str | None], list[dict[str, Any]]] | None = None
    run_emulator: Callable[[str, int], None] | None = None
    reseal_secrets: Callable[[], dict[str, int]] | None = None
    # `db roles`: set the service's PostgreSQL role up (returns its name), or only the SQL it would run.
    setup_app_role: Callable[[], str] | None = None
    app_role_sql: Callable[[], list[str]] | None = None


class RefusalsAsErrors(click.Group):
    """A refusal of the application (unknown customer, order or account, invalid input) is an error
    line and exit status 1 for every command, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CreditctlError as exc:
            raise click.ClickException(exc.message) from None


def build_cli(ops: CliOps) -> click.Group:
    @click.group(
        cls=RefusalsAsErrors, help="creditctl: credit control for purchase orders placed with Haier."
    )
    def cli() -> None:
        ops.configure_logging(os.environ.get("CREDITCTL_LOG_LEVEL", "WARNING").upper())

    @cli.group(help="Database schema.")
    def db() -> None: ...

    @db.command(
        "upgrade", help="Apply every migration (and publish the default rule set on a fresh database)."
    )
    def db_upgrade() -> None:
        ops.upgrade_db()
        click.echo("database is at the newest revision")

    @db.command(
        "roles",
        help="PostgreSQL: create or update the service's role (CREDITCTL_DATABASE_URL's user) through the "
        "owner's URL (CREDITCTL_MIGRATE_DATABASE_URL): every table but INSERT and SELECT only on the audit "
        "trail, owning nothing. Run it after every upgrade.",
    )
    @click.option("--print", "print_only", is_flag=True, help="Print the SQL instead of running it.")
    def db_roles(print_only: bool) -> None:
        if ops.setup_app_role is None or ops.app_role_sql is None:
            raise click.ClickException("roles are not wired in this deployment")
        if print_only:
            for statement in ops.app_role_sql():
                click.echo(statement + ";")
            return
        click.echo(f"the service's role {ops.setup_app_role()!r} may INSERT and SELECT the audit trail only")

    @cli.command(
        help="Load demo customers and accounts from the balance provider, and make demo keys (demo-admin, "
        "demo-orders, demo-auditor, demo-finance) where none is active, printing each once. Keys made "
        "earlier are kept, so a restart of ./scripts/serve leaves the keys you copied working; "
        "--new-keys prints new ones and revokes those."
    )
    @click.option(
        "--new-keys", is_flag=True, help="Make new demo keys and revoke the active ones (lost keys)."
    )
    def demo(new_keys: bool) -> None:
        ctx = ops.make_context()
        for code in ctx.balances.customers():
            register_customer(code, uow=ctx.uow(), clock=ctx.clock)
            report = refresh_balances(code, scope=None, uow=ctx.uow(), balances=ctx.balances, clock=ctx.clock)
            for a in report.accounts:
                click.echo(
                    f"account {code}/{a.sale_group_code}  balance {fmt(a.amount)}  {a.payer_account_name}"
                )
        _demo_keys(ctx, renew=new_keys)

    _keys(cli, ops)
    _serve(cli, ops)
    _operations(cli, ops)
    _rules(cli, ops)
    _haier(cli, ops)
    payments.register(cli, ops.make_context)
    reports.register(cli, ops.make_context)
    webhooks.register(cli, ops.make_context)
    audit.register(cli, ops.make_context)
    return cli


DEMO_ROLES = ("admin", "orders", "auditor", "finance")


def _demo_keys(ctx: AppContext, *, renew: bool) -> None:
    """One active key per demo role: made (and printed, once) where none is, kept otherwise. A key's
    secret is never stored, so a kept key cannot be printed again: say so, and how to get new ones."""
    kept, revoked = [], 0
    for role in DEMO_ROLES:
        made = ensure_api_key(
            name=f"demo-{role}", role=role, renew=renew, uow=ctx.uow(), clock=ctx.clock, actor=operator()
        )
        if made is None:
            kept.append(f"demo-{role}")
            continue
        click.echo(f"{role + ' key (shown once):':<26}{made.secret}")
        revoked += made.revoked
    if kept:
        click.echo(
            f"demo keys kept: {', '.join(kept)} (active since an earlier run printed them; a key is shown "
            "only once). Lost them? creditctl demo --new-keys prints new ones and revokes these."
        )
    if revoked:  # a fresh database has none to revoke: saying so would only puzzle
        click.echo(f"(the demo keys printed by an earlier run no longer work: {revoked} revoked)")


def _keys(cli: click.Group, ops: CliOps) -> None:
    @cli.group(help="API keys.")
    def keys() -> None: ...

    @keys.command("create", help="Create a key issued to an owner and print it once.")
    @click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
    @click.option("--name", required=True)
    @click.option(
        "--owner",
        default=None,
        help="The person (or named system) the key is issued to; four eyes compares owners, so two keys "
        "of one owner never approve each other's requests. Default: the key's name.",
    )
    @click.option("--customer", "customers", multiple=True, help="Limit the key to these customers.")
    @click.option(
        "--approval-limit",
        default=None,
        metavar="AMOUNT",
        help="Admin keys: the largest deferred order this key may release (e.g. 100000.00); "
        "without it the key releases nothing.",
    )
    def keys_create(
        role: str, name: str, owner: str | None, customers: tuple[str, ...], approval_limit: str | None
    ) -> None:
        ctx = ops.make_context()
        new = create_api_key(
            name=name,
            role=role,
            customers=list(customers) or None,
            uow=ctx.uow(),
            clock=ctx.clock,
            balances=ctx.balances,
            actor=operator(),
            approval_limit=approval_limit,
            owner=owner,
        )
        click.echo(new.secret)

    @keys.command(
        "list",
        help="List keys, never the secrets: id, name, owner, role, customers, state, approval authority "
        "(tab-separated).",
    )
    def keys_list() -> None:
        ctx = ops.make_context()
        with ctx.uow() as uow:
            for k in uow.api_keys.all():
                scope = ",".join(sorted(k.customers)) if k.customers else "all customers"
                state = "revoked" if k.revoked_at else "active"
                authority = (
                    f"approval limit {k.approval_limit}"
                    if k.approval_limit is not None
                    else "no approval authority"
                )
                click.echo(f"{k.id}\t{k.name}\t{k.owner}\t{k.role.value}\t{scope}\t{state}\t{authority}")

    @keys.command("revoke", help="Revoke a key by id.")
    @click.argument("key_id", type=int)
    def keys_revoke(key_id: int) -> None:
        ctx = ops.make_context()
        if not revoke_api_key(key_id, uow=ctx.uow(), clock=ctx.clock, actor=operator()):
            raise click.ClickException(f"no active key with id {key_id}")
        click.echo(f"key {key_id} revoked")


def _serve(cli: click.Group, ops: CliOps) -> None:
    @cli.command(help="Serve the API with gunicorn.")
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=8000, show_default=True, type=int)
    @click.option(
        "--workers", default=None, type=int, help="Worker processes (default CREDITCTL_WORKERS or 2)."
    )
    @click.option(
        "--threads", default=None, type=int, help="Threads per worker (default CREDITCTL_THREADS or 8)."
    )
    def serve(host: str, port: int, workers: int | None, threads: int | None) -> None:
        settings = ops.load_settings()
        listener = bind_listener(host, port)  # refused at once when the port is taken, before anything runs
        prom_dir = metrics_dir(Path(settings.instance_path) / "prometheus", os.getpid())  # gunicorn's pid
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(prom_dir)}
        count = str(workers or settings.workers)
        threads = threads or settings.threads
        env["CREDITCTL_THREADS"] = str(threads)  # the database pool of each worker covers its threads
        args = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"fd://{listener.fileno()}",  # the socket bound above: gunicorn cannot lose a race for it
            "--workers",
            count,
            # gthread whose main loop reads each request before a thread serves it: a client that
            # stalls mid-request holds no thread (adapters/web/gunicorn_worker.py)
            "--worker-class",
            "adapters.web.gunicorn_worker.CreditctlThreadWorker",
            "--threads",
            str(threads),
            "--timeout",
            "30",
            "--graceful-timeout",
            "10",
            "--keep-alive",
            "5",
            "--config",
            "python:adapters.cli.gunicorn_conf",
            "--no-control-socket",
            "--log-level",
            "info",
            "wsgi:app",
        ]
        click.echo(
            f"serving on {_url(host, port)} with {count} workers of {threads} threads (docs at /docs)",
            err=True,
        )
        os.execvpe(sys.executable, args, env)


def metrics_dir(root: Path, pid: int) -> Path:
    """An empty folder for the metrics files of the server `pid` is about to become (gunicorn's
    multiprocess mode: each worker writes its own, /metrics adds them up), under `root`.

    One per server, not one per instance folder: two servers started with the same folder (instances
    side by side on one host) would otherwise count each other's workers, and a server restarted after
    a crash would delete the files of the other while they are written (and fail to start when one of
    them wrote a file between the delete and its mkdir). The folders of servers no longer running go."""
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        name, _, number = old.name.partition("-")
        if name == "serve" and number.isdigit() and int(number) != pid and not _running(int(number)):
            shutil.rmtree(old, ignore_errors=True)
    ours = root / f"serve-{pid}"
    shutil.rmtree(ours, ignore_errors=True)  # a crashed server's whose pid this one has now
    ours.mkdir()
    return ours


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def bind_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (as gunicorn binds: SO_REUSEADDR), inheritable by the server
    exec'd next; a taken port or an unusable address is a ClickException naming it, at once."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"port {port} on {host} is already in use (another creditctl serve?); "
                f"choose another with --port, e.g. --port {port + 1}"
            ) from None
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _operations(cli: click.Group, ops: CliOps) -> None:
    @cli.command(help="Register a customer (sold-to code) so its accounts can be decided on.")
    @click.argument("code")
    @click.option("--name", default="")
    def customer(code: str, name: str) -> None:
        ctx = ops.make_context()
        added = register_customer(code, name=name, uow=ctx.uow(), clock=ctx.clock)
        click.echo("registered" if added else "already registered")

    @cli.command(help="Fetch and store every payer account balance of a customer.")
    @click.argument("customer_code")
    def balance(customer_code: str) -> None:
        ctx = ops.make_context()
        try:
            report = refresh_balances(
                customer_code, scope=None, uow=ctx.uow(), balances=ctx.balances, clock=ctx.clock
            )
        except BalanceUnavailable as exc:
            raise click.ClickException(f"{exc.code}: {exc.message}") from None
        for a in report.accounts:
            click.echo(
                f"{a.sale_group_code}\t{fmt(a.amount)}\t{a.payer_account_name}\t{report.fetched_at.isoformat()}"
            )

    @cli.command(help="Evaluate an order against the stored balance and active rules, reserving nothing.")
    @click.option("--customer", "customer_code", required=True)
    @click.option("--sale-group", "sale_group_code", required=True)
    @click.option("--amount", required=True)
    @click.option("--channel", default=None)
    def evaluate(customer_code: str, sale_group_code: str, amount: str, channel: str | None) -> None:
        ctx = ops.make_context()
        try:
            money = parse_money(amount)
        except MoneyError as exc:
            raise click.BadParameter(str(exc), param_hint="--amount") from None
        order = Order("simulation", customer_code, sale_group_code, money, channel)
        sim = simulate_order(order, scope=None, uow=ctx.uow(), clock=ctx.clock)
        click.echo(json.dumps(simulation_json(sim), indent=2, default=_plain, ensure_ascii=False))

    @cli.command(help="Re-check deferred orders (one, or all of them).")
    @click.argument("order_id", required=False)
    @click.option("--customer", "customer_code", help="The order's customer, where the id is not unique.")
    def recheck(order_id: str | None, customer_code: str | None) -> None:
        ctx = ops.make_context()
        if order_id:
            ids: list[tuple[str | None, str]] = [(customer_code, order_id)]
        else:
            with ctx.uow() as uow:
                ids = list(uow.decisions.deferred())
        for customer, oid in ids:
            d = recheck_order(
                oid,
                customer_code=customer,
                scope=None,
                uow=ctx.uow(),
                balances=ctx.balances,
                actor=operator(),
            )
            click.echo(f"{oid}\t{d.outcome.value}\t{d.state.value}")

    @cli.command(
        help="End holds and deferrals whose time ran out, seal the audit trail, prune Idempotency-Key "
        "records older than 24 h, end backtests whose worker stopped and prune old ones (cron, or often)."
    )
    def expire() -> None:
        ctx = ops.make_context()
        result = sweep(uow=ctx.uow())
        sealed = seal_audit(uow=ctx.uow())  # the events the sweep wrote, and any others not sealed yet
        pruned = prune_idempotency_records(uow=ctx.uow())
        click.echo(
            f"accounts with expired holds: {result.holds_expired_on}; "
            f"deferrals ended: {result.deferrals_expired}; audit events sealed: {sealed}; "
            f"idempotency records pruned: {pruned}"
        )
        if ctx.backtests is not None:
            stopped = fail_stopped_backtests(store=ctx.backtests)
            pruned = prune_backtests(store=ctx.backtests, policy=ctx.backtest_policy)
            click.echo(f"backtests whose worker stopped: {len(stopped)}; old backtests pruned: {pruned}")


def _rules(cli: click.Group, ops: CliOps) -> None:
    @cli.group(help="Rule sets.")
    def rules() -> None: ...

    @rules.command("export", help="Print the active rule set document as JSON.")
    def rules_export() -> None:
        ctx = ops.make_context()
        with ctx.uow() as uow:
            active = uow.rule_sets.active()
        click.echo(dumps_document(active.rules.document))

    @rules.command("import", help="Validate a rule set document and publish it as the next version.")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False))
    @click.option("--name", default="imported")
    @click.option("--reason", default="imported", show_default=True, help="Why: kept with the version")
    @click.option("--by", default="cli", show_default=True, help="Who publishes it (a name for the record)")
    def rules_import(path: str, name: str, reason: str, by: str) -> None:
        ctx = ops.make_context()
        try:
            document = loads_document(Path(path).read_text(encoding="utf-8"))
            with ctx.uow() as uow:
                published = uow.rule_sets.publish(name, document, uow.now(), by=by, reason=reason)
                uow.audit.append(
                    "rule_set.published",
                    at=uow.now(),
                    actor=operator(),
                    subject={"rule_set_id": published.id, "version": published.version},
                    after={
                        "name": name,
                        "document_sha256": hashlib.sha256(canonical_json(document).encode()).hexdigest(),
                    },
                )
                uow.commit()
        except RuleSetInvalid as exc:
            raise click.ClickException(f"rule set refused:\n{exc}") from None
        click.echo(f"published version {published.version}")

    _backtest(rules, ops)
    _rules_files(rules, ops)
    _rules_simulate(rules, ops)


def _backtest(rules: click.Group, ops: CliOps) -> None:
    @rules.command("backtest", help="Replay the stored decisions of a period under a rule set document.")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False))
    @click.option("--from", "start", required=True, type=click.DateTime(), help="UTC, e.g. 2026-11-01")
    @click.option("--to", "end", required=True, type=click.DateTime(), help="UTC, exclusive")
    @click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True), help="changed orders")
    def rules_backtest(path: str, start: datetime, end: datetime, csv_path: str | None) -> None:
        ctx = ops.make_context()
        assert ctx.decision_history is not None and ctx.backtests is not None
        cmd = backtest_of(
            loads_document(Path(path).read_text(encoding="utf-8")),
            start.replace(tzinfo=UTC),
            end.replace(tzinfo=UTC),
            "cli",
        )
        run = run_backtest(
            cmd,
            history=ctx.decision_history,
            store=ctx.backtests,
            holder=f"cli:{socket.gethostname()}:{os.getpid()}",
            policy=ctx.backtest_policy,
        )
        for line in backtest_report(run):
            click.echo(line)
        if csv_path:
            with open(csv_path, "w", newline="", encoding="utf-8") as out:
                out.writelines(changes_csv(iter_backtest_changes(run.id, store=ctx.backtests)))
            click.echo(f"changed orders written to {csv_path}")


def _rules_files(rules: click.Group, ops: CliOps) -> None:
    @rules.command("validate", help="Check a rule set file; every problem with its JSON pointer (exit 1).")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False))
    def rules_validate(path: str) -> None:
        problems = problems_of(_read_document(path))
        for pointer, message in problems:
            click.echo(f"{path}#{pointer or '/'}: {message}")
        if problems:
            raise SystemExit(1)
        click.echo(f"{path}: valid")

    @rules.command("diff", help="What changed between two rule set files (or versions: v1 v2).")
    @click.argument("before")
    @click.argument("after")
    def rules_diff(before: str, after: str) -> None:
        changes = diff_documents(_document_or_version(ops, before), _document_or_version(ops, after))
        click.echo(json.dumps(changes, indent=2, default=_plain, ensure_ascii=False))

    @rules.command("test", help="Run rule tests (a JSON file of cases); exit 1 naming each failure.")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False))
    def rules_test(path: str) -> None:
        suite = _read_document(path)
        target = suite.get("rule_set")
        if isinstance(target, str):
            target = _read_document(str(Path(path).parent / target))
        try:
            compiled = parse_rule_set(target)
        except RuleSetInvalid as exc:
            raise click.ClickException(f"rule set refused:\n{exc}") from None
        now = datetime.now(UTC)
        results = [run_case(compiled, case, now) for case in suite.get("cases", [])]
        for result in results:
            click.echo(f"{'PASS' if result.passed else 'FAIL'}: {result.name}")
            if not result.passed:
                click.echo(f"  {result.problem}")
                for t in result.trace:
                    reads = ", ".join(
                        f"{k}={_plain(v) if v is not None else None}" for k, v in t.reads.items()
                    )
                    click.echo(f"    {t.rule_id}: matched={t.matched} {reads}")
        failed = sum(not r.passed for r in results)
        click.echo(f"{len(results) - failed} passed, {failed} failed")
        if failed or not results:
            raise SystemExit(1)


def _rules_simulate(rules: click.Group, ops: CliOps) -> None:
    @rules.command("simulate", help="One order under a rule set file, on a stored or a hypothetical account.")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False))
    @click.option("--customer", "customer_code", help="A real account: its stored balance, exposure, params")
    @click.option("--sale-group", "sale_group_code", required=True)
    @click.option("--amount", required=True)
    @click.option("--balance", help="A hypothetical account with this balance (instead of --customer)")
    @click.option("--exposure", default="0.00", show_default=True, help="The hypothetical account's exposure")
    def rules_simulate(
        path: str,
        customer_code: str | None,
        sale_group_code: str,
        amount: str,
        balance: str | None,
        exposure: str,
    ) -> None:
        if (customer_code is None) == (balance is None):
            raise click.UsageError("give --customer (a real account) or --balance (a hypothetical one)")
        try:
            money = parse_money(amount)
            account = None
            if balance is not None:
                account = HypotheticalAccount(balance=parse_money(balance), exposure=parse_money(exposure))
        except MoneyError as exc:
            raise click.BadParameter(str(exc)) from None
        order = Order("simulation", customer_code or "hypothetical", sale_group_code, money)
        ctx = ops.make_context()
        try:
            sim = simulate_with_document(_read_document(path), order, account, scope=None, uow=ctx.uow())
        except RuleSetRefused as exc:
            for pointer, messages in exc.errors.items():
                for message in messages:
                    click.echo(f"{path}#{pointer}: {message}", err=True)
            raise SystemExit(1) from None
        click.echo(json.dumps(simulation_json(sim), indent=2, default=_plain, ensure_ascii=False))


def simulation_json(sim: Simulation) -> dict[str, Any]:
    """A simulation as the CLI prints it: outcome, reasons, shortfall, facts and the full rule trace."""
    return {
        "outcome": sim.assessment.outcome.value,
        "reasons": [
            {"rule": r.rule, "reason": r.reason, "message": r.message} for r in sim.assessment.reasons
        ],
        "shortfall": fmt(sim.assessment.shortfall),
        "rule_set_version": sim.rule_set_version,
        "facts": sim.assessment.facts,
        "trace": [
            {"rule": t.rule_id, "matched": t.matched, "reads": dict(t.reads)} for t in sim.evaluation.trace
        ],
    }


def _read_document(path: str) -> Any:
    try:
        return loads_document(Path(path).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise click.ClickException(f"{path}: not JSON: {exc}") from None


def _document_or_version(ops: CliOps, ref: str) -> Any:
    """A file path, or a published version as v<N>."""
    if ref.startswith("v") and ref[1:].isdigit():
        with ops.make_context().uow() as uow:
            found = uow.rule_sets.record_by_version(int(ref[1:]))
        if found is None:
            raise click.ClickException(f"no published version {ref[1:]}")
        return found.document
    return _read_document(ref)


def _haier(cli: click.Group, ops: CliOps) -> None:
    @cli.group(help="The Haier JSH connection: configure, check, emulate.")
    def haier() -> None: ...

    @haier.command(
        "configure", help="Create or replace a connection config from a JSON file (or - for stdin)."
    )
    @click.argument("name")
    @click.option("--file", "path", required=True, type=click.File("r", encoding="utf-8"))
    def haier_configure(name: str, path: Any) -> None:
        ctx = ops.make_context()
        tools = ctx.upstream_configs
        if tools is None:
            raise click.ClickException("upstream configs are not enabled")
        try:
            document = json.loads(path.read(), parse_float=Decimal)
            shown = put_config(
                name,
                document,
                kind=tools.kind,
                validate=tools.validate,
                redact=tools.redact,
                uow=ctx.uow(),
                box=tools.box,
                clock=ctx.clock,
                actor=operator(),
            )
        except json.JSONDecodeError as exc:
            raise click.ClickException(f"not JSON: {exc.msg} at line {exc.lineno}") from None
        except CreditctlError as exc:
            lines = [f"  {field}: {'; '.join(msgs)}" for field, msgs in sorted(exc.errors.items())]
            raise click.ClickException("\n".join([exc.message, *lines])) from None
        click.echo(json.dumps(shown, indent=2, default=_plain, ensure_ascii=False))

    @haier.command("show", help='Show a config with its secrets as "set".')
    @click.argument("name")
    def haier_show(name: str) -> None:
        ctx = ops.make_context()
        tools = ctx.upstream_configs
        if tools is None:
            raise click.ClickException("upstream configs are not enabled")
        try:
            shown = get_config(
                name, validate=tools.validate, redact=tools.redact, uow=ctx.uow(), box=tools.box
            )
        except CreditctlError as exc:
            raise click.ClickException(exc.message) from None
        click.echo(json.dumps(shown, indent=2, default=_plain, ensure_ascii=False))

    _haier_runtime(haier, ops)
    _secrets(cli, ops)


def _haier_runtime(haier: click.Group, ops: CliOps) -> None:
    @haier.command("check", help="Fetch a token and one balance, reporting each step (no secret is printed).")
    @click.argument("name", required=False)
    @click.option("--customer", default=None, help="Customer code to query (default: the first configured).")
    def haier_check(name: str | None, customer: str | None) -> None:
        if ops.check_upstream is None:
            raise click.ClickException("no upstream check available")
        try:
            steps = ops.check_upstream(name, customer)
        except CreditctlError as exc:
            raise click.ClickException(exc.message) from None
        for step in steps:
            mark = "ok  " if step["ok"] else "FAIL"
            code = f" [{step['error_code']}]" if step["error_code"] else ""
            click.echo(f"{mark} {step['step']:<8} {step['latency_ms']:>8.1f} ms{code}  {step['detail']}")
        if not all(step["ok"] for step in steps):
            raise SystemExit(1)

    @haier.command(
        "emulate", help="Run a local emulator of the JSH platform (token, balance, fault injection)."
    )
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=8099, show_default=True, type=int)
    def haier_emulate(host: str, port: int) -> None:
        if ops.run_emulator is None:
            raise click.ClickException("no emulator available")
        click.echo(f"emulating the JSH platform on http://{host}:{port}", err=True)
        ops.run_emulator(host, port)


def _secrets(cli: click.Group, ops: CliOps) -> None:
    @cli.group(help="Secrets at rest.")
    def secrets() -> None: ...

    @secrets.command(
        "rotate", help="Re-encrypt every stored secret under the newest CREDITCTL_SECRET_KEYS key."
    )
    def secrets_rotate() -> None:
        if ops.reseal_secrets is None:
            raise click.ClickException("no secret store available")
        counts = ops.reseal_secrets()
        click.echo(", ".join(f"{k}: {v} re-encrypted" for k, v in counts.items()))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return str(value)
