"""Credit accounts on SQL. `lock` is SELECT ... FOR UPDATE on PostgreSQL; SQLite's immediate transaction
already holds the database write lock."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update

from adapters.sql import driver_statements
from adapters.sql.driver_statements import DriverStatement
from adapters.sql.tables import credit_accounts, holds
from creditctl.domain.account import AccountStatus, CreditAccount, CreditInputs, PaymentProfile
from creditctl.domain.balance import BalanceSnapshot
from creditctl.domain.money import from_fen, to_fen
from creditctl.ports.clock import Clock

_c = credit_accounts.c
RATIO_SCALE = Decimal(10000)  # the on-time ratio is stored in ten-thousandths (four places, exact)
# Built once: statements with bound parameters compile once and cost little per call (hot path).
_GET = select(credit_accounts).where(
    _c.customer_code == bindparam("k_customer"), _c.sale_group_code == bindparam("k_group")
)
_EARLIEST_EXPIRY = (
    select(func.min(holds.c.expires_at))
    .where(holds.c.account_id == _c.id, holds.c.status == "open")
    .scalar_subquery()
    .label("earliest_hold_expiry")
)
_LOCK = select(credit_accounts, _EARLIEST_EXPIRY).where(
    _c.customer_code == bindparam("k_customer"), _c.sale_group_code == bindparam("k_group")
)
# PostgreSQL: the lock in a CTE, so that the outer select's clock_timestamp() is read after the row lock
# was granted (in a plain SELECT … FOR UPDATE it is read before a wait unless the holder changed the row):
# the database's time for the decision comes with the lock, in the same round trip.
_LOCKED = _LOCK.with_for_update(of=credit_accounts).cte("locked")
_LOCK_FOR_UPDATE = select(_LOCKED, func.clock_timestamp().label("locked_at"))
_PG_LOCK = DriverStatement.of(_LOCK_FOR_UPDATE)  # the decision's read, on the driver's cursor
_SAVE = update(credit_accounts).where(_c.id == bindparam("k_id"))
_PG_SAVES: dict[frozenset[str], DriverStatement] = {}  # by the columns an UPDATE writes
_UNSET = object()


class SqlAccountRepository:
    def __init__(self, conn: Connection, database_clock: Clock | None = None) -> None:
        """`database_clock` stands in for the database's clock (tests); else lock() reads the server's."""
        self._conn = conn
        self._database_clock = database_clock
        # The stored values of each account read in this unit: save() writes only what differs (a
        # decision changes its exposure and little else; a narrower UPDATE is less to send and to log).
        self._stored: dict[int, dict[str, Any]] = {}

    def get(self, customer_code: str, sale_group_code: str) -> CreditAccount | None:
        row = self._conn.execute(_GET, {"k_customer": customer_code, "k_group": sale_group_code}).first()
        return self._loaded(row) if row else None

    def lock(self, customer_code: str, sale_group_code: str) -> CreditAccount | None:
        """The account locked (FOR UPDATE; SQLite's immediate transaction already locks), with the
        earliest expiry of its open holds from the same round trip."""
        key = {"k_customer": customer_code, "k_group": sale_group_code}
        if self._conn.dialect.name == "sqlite":
            row: Any = self._conn.execute(_LOCK, key).first()
        else:
            row = driver_statements.fetch_one(self._conn, _PG_LOCK, key)
        if row is None:
            return None
        account = self._loaded(row)
        if self._database_clock is not None:
            account.locked_at = self._database_clock.now()
        else:
            account.locked_at = getattr(row, "locked_at", None)
        account.hold_expiry_known = True
        earliest = row.earliest_hold_expiry
        if isinstance(earliest, str):  # SQLite returns an aggregate of a DateTime column as text
            earliest = datetime.fromisoformat(earliest)
        if earliest is not None and earliest.tzinfo is None:
            earliest = earliest.replace(tzinfo=UTC)
        account.earliest_hold_expiry = earliest
        return account

    def add(self, account: CreditAccount) -> CreditAccount:
        now = account.created_at or datetime.now(UTC)  # bookkeeping, never compared: host clock
        values = _values(account) | {"created_at": now}
        if self._conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            self._conn.execute(pg_insert(credit_accounts).values(values).on_conflict_do_nothing())
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            self._conn.execute(sqlite_insert(credit_accounts).values(values).on_conflict_do_nothing())
        locked = self.lock(account.customer_code, account.sale_group_code)
        assert locked is not None
        return locked

    def save(self, account: CreditAccount) -> None:
        """Write what changed since the account was read in this unit (all of it if it was not)."""
        values = _values(account)
        del values["customer_code"], values["sale_group_code"]  # the key never changes: less to write
        stored = self._stored.get(account.id)
        if stored is not None:
            values = {k: v for k, v in values.items() if k == "updated_at" or stored.get(k, _UNSET) != v}
            stored.update(values)
        if self._conn.dialect.name == "sqlite":
            self._conn.execute(_SAVE, values | {"k_id": account.id})
            return
        columns = frozenset(values)
        statement = _PG_SAVES.get(columns)
        if statement is None:  # a few shapes in all (a decision's is exposure and updated_at)
            statement = _PG_SAVES.setdefault(columns, DriverStatement.of(_SAVE, keys=sorted(columns)))
        driver_statements.execute(self._conn, statement, values | {"k_id": account.id})

    def _loaded(self, row: Any) -> CreditAccount:
        account = _to_account(row)
        self._stored[account.id] = _values(account)  # as save() would write it: compared like for like
        return account

    def for_customer(self, customer_code: str) -> list[CreditAccount]:
        stmt = select(credit_accounts).where(_c.customer_code == customer_code).order_by(_c.sale_group_code)
        return [self._loaded(r) for r in self._conn.execute(stmt)]


def _values(a: CreditAccount) -> dict[str, Any]:
    snap = a.snapshot
    return {
        "customer_code": a.customer_code,
        "sale_group_code": a.sale_group_code,
        "sale_group_name": a.sale_group_name,
        "payer_account_code": a.payer_account_code,
        "payer_account_name": a.payer_account_name,
        "status": a.status.value,
        "frozen_reason": a.frozen_reason,
        "frozen_by": a.frozen_by,
        "frozen_at": a.frozen_at,
        "exposure_fen": to_fen(a.exposure),
        "balance_fen": to_fen(snap.amount) if snap else None,
        "balance_fetched_at": snap.fetched_at if snap else None,
        "balance_source": snap.source if snap else None,
        "params": a.params or None,
        "updated_at": datetime.now(UTC),  # bookkeeping, never compared: host clock
    } | _profile_values(a)


def _fen(v: Decimal | None) -> int | None:
    return None if v is None else to_fen(v)


def _dec(v: int | None) -> Decimal | None:
    return None if v is None else from_fen(v)


def _profile_values(a: CreditAccount) -> dict[str, Any]:
    p, c = a.payment, a.credit
    return {
        "payment_max_overdue_days": p.max_overdue_days,
        "payment_on_time_ratio_bp": int(p.on_time_ratio * RATIO_SCALE),
        "payment_overdue_fen": to_fen(p.overdue_amount),
        "base_credit_limit_fen": _fen(c.base_limit),
        "base_credit_limit_reason": c.base_limit_reason,
        "average_balance_fen": _fen(c.average_balance),
        "profile_computed_at": c.computed_at,
        "profile_valid_until": c.valid_until,
        "temporary_limit_fen": _fen(c.temporary_limit),
        "temporary_limit_until": c.temporary_until,
        "temporary_limit_request_id": c.temporary_request_id,
        "low_balance_alerted": a.low_balance_alerted,
    }


def _profile(r: Any) -> tuple[PaymentProfile, CreditInputs]:
    payment = PaymentProfile()
    if r.payment_max_overdue_days is not None:
        payment = PaymentProfile(
            max_overdue_days=r.payment_max_overdue_days,
            on_time_ratio=Decimal(r.payment_on_time_ratio_bp) / RATIO_SCALE,
            overdue_amount=from_fen(r.payment_overdue_fen or 0),
        )
    inputs = CreditInputs(
        base_limit=_dec(r.base_credit_limit_fen),
        base_limit_reason=r.base_credit_limit_reason,
        average_balance=_dec(r.average_balance_fen),
        temporary_limit=_dec(r.temporary_limit_fen),
        temporary_until=r.temporary_limit_until,
        temporary_request_id=r.temporary_limit_request_id,
        computed_at=r.profile_computed_at,
        valid_until=r.profile_valid_until,
    )
    return payment, inputs


def _to_account(r: Any) -> CreditAccount:
    """From a row (or anything with the columns as attributes)."""
    payment, inputs = _profile(r)
    snap = None
    if r.balance_fen is not None and r.balance_fetched_at is not None:
        snap = BalanceSnapshot(
            amount=from_fen(r.balance_fen), fetched_at=r.balance_fetched_at, source=r.balance_source or ""
        )
    return CreditAccount(
        id=r.id,
        customer_code=r.customer_code,
        sale_group_code=r.sale_group_code,
        sale_group_name=r.sale_group_name,
        payer_account_code=r.payer_account_code,
        payer_account_name=r.payer_account_name,
        status=AccountStatus(r.status),
        frozen_reason=r.frozen_reason,
        frozen_by=r.frozen_by,
        frozen_at=r.frozen_at,
        exposure=from_fen(r.exposure_fen),
        snapshot=snap,
        params=dict(r.params or {}),
        payment=payment,
        credit=inputs,
        created_at=r.created_at,
        low_balance_alerted=bool(r.low_balance_alerted),
    )
