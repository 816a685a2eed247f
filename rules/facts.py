"""The fact catalogue: the only names a condition may read, each with a type the validator checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class FactType(StrEnum):
    """How a fact's value is represented (and so what it may be compared with)."""

    MONEY = "money"  # Decimal CNY
    INTEGER = "integer"  # int
    RATIO = "ratio"  # Decimal, usually 0..1
    STRING = "string"  # str, free text
    ENUM = "enum"  # str, one of FactSpec.values

    @property
    def numeric(self) -> bool:
        """Money, integers and ratios compare with each other numerically."""
        return self in (FactType.MONEY, FactType.INTEGER, FactType.RATIO)

    @property
    def noun(self) -> str:
        """Phrase for error messages: "a money fact", "an enum fact"."""
        article = "an" if self.value[0] in "aeiou" else "a"
        return f"{article} {self.value} fact"


@dataclass(frozen=True, slots=True)
class FactSpec:
    """One catalogue entry; `values` lists the allowed strings of an enum fact."""

    name: str
    type: FactType
    description: str
    values: tuple[str, ...] | None = None


def _catalogue(*specs: FactSpec) -> Mapping[str, FactSpec]:
    return MappingProxyType({spec.name: spec for spec in specs})


FACTS: Mapping[str, FactSpec] = _catalogue(
    FactSpec("order.amount", FactType.MONEY, "Amount of the order being decided (CNY)."),
    FactSpec("order.sale_group", FactType.STRING, "Sales group code the order is placed in."),
    FactSpec("order.channel", FactType.STRING, "Channel the order came from, as the order system names it."),
    FactSpec(
        "balance.amount",
        FactType.MONEY,
        "Payer balance reported by Haier (CNY); missing when unknown or older than max_balance_age_s.",
    ),
    FactSpec(
        "balance.age_s", FactType.INTEGER, "Seconds since the balance snapshot was fetched; missing if none."
    ),
    FactSpec("exposure", FactType.MONEY, "Sum of holds counting against the account (CNY)."),
    FactSpec(
        "available", FactType.MONEY, "balance - exposure - safety_margin (CNY); missing without a balance."
    ),
    FactSpec("credit.limit", FactType.MONEY, "How far beyond available an order may go (CNY)."),
    FactSpec(
        "credit.grade", FactType.ENUM, "Credit grade from payment history, A best.", ("A", "B", "C", "D")
    ),
    FactSpec(
        "payment.max_overdue_days",
        FactType.INTEGER,
        "Worst open overdue days; 0 when there are no payment records.",
    ),
    FactSpec(
        "payment.on_time_ratio",
        FactType.RATIO,
        "Share of payments made on time (0..1); 1 when there are no payment records.",
    ),
    FactSpec(
        "payment.overdue_amount",
        FactType.MONEY,
        "Money currently overdue (CNY); 0 when there are no payment records.",
    ),
    FactSpec("account.status", FactType.ENUM, "Whether the credit account is frozen.", ("active", "frozen")),
    FactSpec("account.age_days", FactType.INTEGER, "Days since the credit account was created."),
    FactSpec("now.hour", FactType.INTEGER, "Hour of the decision time, 0..23 UTC."),
)
