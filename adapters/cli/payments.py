"""`creditctl payments import FILE`: payment records from CSV, each refused line reported with its number."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import date
from typing import Any

import click

from adapters.cli.audit import operator
from adapters.cli.operator import operator_principal
from creditctl.domain.errors import NotFound, UpstreamUnavailable
from creditctl.domain.money import MoneyError, parse_money
from creditctl.domain.payment import PaymentRecord
from creditctl.services.context import AppContext
from creditctl.services.payments import MAX_BATCH, PostPayments, post_payments

COLUMNS = ("customer_code", "sale_group_code", "invoice_id", "amount", "due_date", "paid_date", "paid_amount")


def register(cli: click.Group, make_context: Callable[[], AppContext]) -> None:
    @cli.group(help="Payment records (invoices and what was paid on them).")
    def payments() -> None: ...

    @payments.command(
        "import",
        help="Import payment records from CSV with the columns " + ", ".join(COLUMNS) + ". Refused lines "
        "are reported with their number and reason, the rest imported; exit status 1 if any was refused.",
    )
    @click.argument("path", type=click.File("r", encoding="utf-8-sig"))
    @click.option("--by", default="csv-import", show_default=True, help="Recorded as who posted them.")
    def payments_import(path: Any, by: str) -> None:
        refused, groups = _parse(path)
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        ctx = make_context()
        for (customer, group), lines in groups.items():
            for start in range(0, len(lines), MAX_BATCH):
                chunk = lines[start : start + MAX_BATCH]
                cmd = PostPayments(customer, group, [r for _, r in chunk], by=by, partial=True)
                try:
                    result = post_payments(
                        cmd, who=operator_principal(), uow=ctx.uow(), actor=operator(), balances=ctx.balances
                    )
                except (NotFound, UpstreamUnavailable) as exc:
                    refused += [(n, exc.message) for n, _ in chunk]
                    continue
                refused += [(chunk[i][0], _describe(p)) for i, p in result.refused.items()]
                for _, outcome in result.results:
                    counts[outcome] += 1
        for number, why in sorted(refused):
            click.echo(f"line {number}: {why}", err=True)
        summary = ", ".join(f"{n} {k}" for k, n in counts.items())
        click.echo(f"{sum(counts.values())} accepted ({summary}), {len(refused)} refused")
        if refused:
            raise SystemExit(1)


def _describe(problems: dict[str, list[str]]) -> str:
    return "; ".join(f"{f} {m}" for f, ms in problems.items() for m in ms)


def _parse(
    stream: Any,
) -> tuple[list[tuple[int, str]], dict[tuple[str, str], list[tuple[int, PaymentRecord]]]]:
    reader = csv.DictReader(stream)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise click.ClickException(f"missing columns: {', '.join(missing)}")
    refused: list[tuple[int, str]] = []
    groups: dict[tuple[str, str], list[tuple[int, PaymentRecord]]] = {}
    for row in reader:
        number = reader.line_num
        try:
            record = _record(row)
        except ValueError as exc:
            refused.append((number, str(exc)))
            continue
        key = ((row["customer_code"] or "").strip(), (row["sale_group_code"] or "").strip())
        groups.setdefault(key, []).append((number, record))
    return refused, groups


def _record(row: dict[str, str | None]) -> PaymentRecord:
    def text(name: str) -> str:
        return (row.get(name) or "").strip()

    def money(name: str, default: str | None = None) -> Any:
        value = text(name) or default
        try:
            return parse_money(value or "")
        except MoneyError:
            raise ValueError(f'{name} {value!r} is not an amount such as "1999.98"') from None

    def day(name: str, required: bool) -> date | None:
        value = text(name)
        if not value and not required:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name} {value!r} is not a date such as 2026-01-31") from None

    due = day("due_date", True)
    assert due is not None
    return PaymentRecord(
        invoice_id=text("invoice_id"),
        amount=money("amount"),
        due_date=due,
        paid_amount=money("paid_amount", "0.00"),
        paid_date=day("paid_date", False),
    )
