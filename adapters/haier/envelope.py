"""Read the balance answer in every shape seen in the wild, exactly, and refuse anything else.

Shapes: the documented envelope {"success", "code", "description", "timeStamp", "data"}, a bare
object (one entry) or a bare list; `data` a list or one entry. Money never passes through float:
JSON numbers are parsed as Decimal. An answer that cannot be read is malformed, never a zero.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from creditctl.domain.balance import PayerBalance
from creditctl.domain.money import CENT, MAX_AMOUNT

_OK_CODES = frozenset({"success", "0", "200", "ok"})
_ENVELOPE_KEYS = frozenset({"success", "code", "description", "data"})
_DECIMAL_TEXT = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,6})?$")


class MalformedAnswer(ValueError):
    """The answer is not a readable balance answer; the message says what is wrong (no values)."""


class QueryRefused(Exception):
    """The upstream answered `success: false`: a business refusal, with its code and description."""

    def __init__(self, code: str | None, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _refuse_constant(name: str) -> Any:
    raise MalformedAnswer(f"JSON constant {name} is not a number")


def load_json(body: bytes) -> Any:
    """Parse JSON exactly: floats as Decimal, NaN/Infinity refused, any failure MalformedAnswer."""
    try:
        text = body.decode("utf-8-sig")
        return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except MalformedAnswer:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedAnswer("the answer is not valid JSON") from None


def parse_balances(doc: Any) -> tuple[PayerBalance, ...]:
    """The payer balances in a parsed answer; raise QueryRefused or MalformedAnswer."""
    return tuple(_entry(item, i) for i, item in enumerate(_entries(doc)))


def _entries(doc: Any) -> list[Any]:
    if isinstance(doc, list):
        return doc
    if not isinstance(doc, Mapping):
        raise MalformedAnswer("the answer is neither an object nor a list")
    if "payerAccountBalance" in doc:
        return [doc]
    if not _ENVELOPE_KEYS & doc.keys():
        raise MalformedAnswer("the answer has neither an envelope nor balance entries")
    _check_success(doc)
    data = doc.get("data")
    if isinstance(data, list):
        return data
    if isinstance(data, Mapping):
        return [data]
    raise MalformedAnswer("the envelope has no data list or entry")


def _check_success(doc: Mapping[str, Any]) -> None:
    success = doc.get("success")
    code = doc.get("code")
    description = doc.get("description") or doc.get("message") or "no description"
    if success is None and code is not None:
        success = str(code).lower() in _OK_CODES
    if success is None:
        return
    if not isinstance(success, bool):
        raise MalformedAnswer("the envelope's success is not true or false")
    if not success:
        raise QueryRefused(None if code is None else str(code)[:64], str(description)[:8192])


def _entry(item: Any, index: int) -> PayerBalance:
    if not isinstance(item, Mapping):
        raise MalformedAnswer(f"entry {index} is not an object")
    return PayerBalance(
        sale_group_code=_code(item, "saleGroupCode", index),
        sale_group_name=_name(item, "saleGroupName", index),
        payer_account_code=_code(item, "payerAccountCode", index),
        payer_account_name=_name(item, "payerAccountName", index),
        amount=parse_amount(item.get("payerAccountBalance"), index),
    )


def _code(item: Mapping[str, Any], key: str, index: int) -> str:
    value = item.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise MalformedAnswer(f"entry {index} has no usable {key}")
    return value.strip()


def _name(item: Mapping[str, Any], key: str, index: int) -> str:
    """Names are for display only: absent or null reads as empty, anything else must be text."""
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 256:
        raise MalformedAnswer(f"entry {index} has a {key} that is not text")
    return value


def parse_amount(value: Any, index: int = 0) -> Decimal:
    """A balance as exact Decimal: a JSON number or a decimal string; finite, at most 1e12 CNY, and
    exact in fen (at most two decimals that are not zero: "1000.005" is refused, never rounded, and
    "1000.500" is 1000.500). Negative balances are real and kept; -0 reads 0.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise MalformedAnswer(f"entry {index} has no payerAccountBalance number")
    if isinstance(value, str):
        if len(value) > 64 or not _DECIMAL_TEXT.match(value.strip()):
            raise MalformedAnswer(f"entry {index} has a payerAccountBalance that is not a decimal string")
        value = value.strip()
    amount = Decimal(value)
    if not amount.is_finite():
        raise MalformedAnswer(f"entry {index} has a payerAccountBalance that is not finite")
    if amount.copy_abs() > MAX_AMOUNT:  # copy_abs and > are exact: no overflow on huge exponents
        raise MalformedAnswer(f"entry {index} has an implausibly large payerAccountBalance")
    if amount.quantize(CENT) != amount:  # a balance that cannot be stored exactly is no balance
        raise MalformedAnswer(f"entry {index} has a payerAccountBalance with more than two decimals")
    return amount.copy_abs() if amount.is_zero() else amount
