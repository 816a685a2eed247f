"""balance.low fires once per crossing: when available falls below the threshold, and again only after
it has been back at or above threshold + hysteresis (not once per order, not once per cooldown)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from creditctl.domain.account import CreditAccount

TOPIC = "balance.low"


def available_now(account: CreditAccount, params: Mapping[str, Decimal]) -> Decimal | None:
    """Balance - exposure - safety margin as the account stands (None without a balance)."""
    if account.snapshot is None:
        return None
    return account.snapshot.amount - account.exposure - params.get("safety_margin", Decimal(0))


def rearm(account: CreditAccount, params: Mapping[str, Decimal]) -> None:
    """Clear a standing alert once available is back at or above threshold + hysteresis."""
    available = available_now(account, params)
    if not account.low_balance_alerted or available is None:
        return
    threshold = params.get("low_balance_threshold", Decimal(0))
    if available >= threshold + params.get("low_balance_hysteresis", Decimal(0)):
        account.low_balance_alerted = False


def take_alert(account: CreditAccount) -> bool:
    """True (and the alert now stands) unless an alert for this crossing was already sent."""
    if account.low_balance_alerted:
        return False
    account.low_balance_alerted = True
    return True
