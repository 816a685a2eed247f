"""account parameter overrides brought within the bounds the parameters have now

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-05 12:00:00

Before the bounds, PUT .../params took any whole number of seconds (hold_ttl_s 0: every hold expired at
once; 9223372036854775807: every order on the account a 500) and any amount of money. Each override
outside its bounds is set to the nearest bound, and a ratio with more than four places is rounded to
four, so no stored account keeps a value that the API would now refuse. The bounds are written out here
as they were at this revision (a migration must not change when the catalogue does later). A published
rule set version is never rewritten: it is read back within the bounds (rules.parse_rule_set stored=True).
Nothing to undo on downgrade: the values before are not kept, and the bounded ones are valid either way.
"""
import json
import logging
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0014'
branch_labels = None
depends_on = None

log = logging.getLogger('alembic.runtime.migration')

_MONEY = ('0.00', '1000000000000.00', 2)
_RATIO = ('0', '1', 4)
_DAYS = ('0', '3650', 0)
BOUNDS = {  # name: (minimum, maximum, places)
    'max_balance_age_s': ('1', '1800', 0),
    'refresh_after_s': ('0', '1800', 0),
    'safety_margin': _MONEY,
    'max_overdue_days': _DAYS,
    'single_order_review_amount': _MONEY,
    'low_balance_threshold': _MONEY,
    'low_balance_hysteresis': _MONEY,
    'base_credit_limit': _MONEY,
    'deferral_ttl_s': ('60', '2592000', 0),
    'hold_ttl_s': ('3600', '7776000', 0),
    'grade_multiplier_a': _RATIO,
    'grade_multiplier_b': _RATIO,
    'grade_multiplier_c': _RATIO,
    'grade_multiplier_d': _RATIO,
    'grade_a_min_on_time_ratio': _RATIO,
    'grade_a_max_overdue_days': _DAYS,
    'grade_b_min_on_time_ratio': _RATIO,
    'grade_b_max_overdue_days': _DAYS,
    'grade_c_min_on_time_ratio': _RATIO,
    'grade_c_max_overdue_days': _DAYS,
    'payment_window_days': ('1', '3650', 0),
    'avg_balance_window_days': ('1', '3650', 0),
    'avg_balance_cap_factor': ('0', '100', 4),
}

accounts = sa.table('credit_accounts', sa.column('id', sa.Integer), sa.column('params', sa.Text))


def bounded(name: str, value: object) -> object:
    """The value within its bounds, in the form it was stored in (an int, or a decimal string)."""
    if name not in BOUNDS or isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        return value
    low, high, places = BOUNDS[name]
    try:
        number = Decimal(value)
    except ArithmeticError:
        return value
    if not number.is_finite():
        return value
    within = min(max(number, Decimal(low)), Decimal(high))
    if places and -within.as_tuple().exponent > places:
        within = within.quantize(Decimal(1).scaleb(-places))
    if within == number and within.as_tuple().exponent == number.as_tuple().exponent:
        return value
    return int(within) if places == 0 else format(within, 'f')


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(accounts.c.id, accounts.c.params).where(accounts.c.params.is_not(None)))
    for account_id, text in list(rows):
        params = json.loads(text, parse_float=Decimal)
        if not isinstance(params, dict):
            continue
        changed = {name: bounded(name, value) for name, value in params.items()}
        if changed == params:
            continue
        log.info('account %s: params %s brought within their bounds: %s', account_id, params, changed)
        stored = json.dumps(changed, separators=(',', ':'), ensure_ascii=False, sort_keys=True, default=str)
        conn.execute(sa.update(accounts).where(accounts.c.id == account_id).values(params=stored))


def downgrade() -> None:
    pass
