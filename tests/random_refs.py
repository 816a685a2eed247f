"""Readable random identifiers for tests: `random_order_id("late")` → "order-late-3fa9c1"."""

from __future__ import annotations

import uuid


def random_suffix() -> str:
    """Six hex digits: enough to keep ids apart within one test run."""
    return uuid.uuid4().hex[:6]


def random_order_id(name: str = "") -> str:
    """An order id that says what the test uses it for."""
    return f"order-{name}-{random_suffix()}" if name else f"order-{random_suffix()}"


def random_customer_code(prefix: str = "88") -> str:
    """A customer code (letters and digits only, as register_customer requires)."""
    return f"{prefix}{uuid.uuid4().int % 10**8:08d}"


def random_sale_group(prefix: str = "G") -> str:
    """A sales group code."""
    return f"{prefix}{uuid.uuid4().hex[:4].upper()}"
