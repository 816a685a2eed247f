"""JSON that never turns money into float: non-integers parse as Decimal, NaN/Infinity are refused."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from flask.json.provider import DefaultJSONProvider


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class ExactJSONProvider(DefaultJSONProvider):
    ensure_ascii = False
    sort_keys = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("parse_float", Decimal)
        kwargs.setdefault("parse_constant", _refuse_constant)
        return json.loads(s, **kwargs)
