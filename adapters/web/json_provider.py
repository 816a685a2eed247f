"""JSON that never turns money into float: non-integers parse as Decimal, NaN/Infinity are refused.

Request bodies of the API are parsed by webargs (through flask-smorest), which calls `json.loads` itself;
`ExactJSONParser` makes it parse them the same way as the app's JSON provider does.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import flask
from flask.json.provider import DefaultJSONProvider
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_exact(s: str | bytes, **kwargs: Any) -> Any:
    """json.loads with non-integers as Decimal and NaN/Infinity/-Infinity refused (ValueError)."""
    kwargs.setdefault("parse_float", Decimal)
    kwargs.setdefault("parse_constant", _refuse_constant)
    return json.loads(s, **kwargs)


class ExactJSONProvider(DefaultJSONProvider):
    ensure_ascii = False
    sort_keys = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads_exact(s, **kwargs)


class ExactJSONParser(FlaskParser):
    """webargs' Flask parser, reading JSON bodies with `loads_exact`: a NaN literal is invalid JSON (400)."""

    def _raw_load_json(self, req: flask.Request) -> Any:
        if not is_json_request(req):
            return core.missing
        text = req.get_data(cache=True).decode("utf-8")  # JSON on the wire is UTF-8 (RFC 8259)
        try:
            return loads_exact(text)
        except json.JSONDecodeError:
            raise  # webargs tells an empty body from invalid JSON by its `doc`
        except ValueError as exc:
            raise json.JSONDecodeError(str(exc), text, 0) from None
