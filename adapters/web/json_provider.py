"""JSON that never turns money into float and reads only documents with one meaning.

Non-integers parse as Decimal and NaN/Infinity are refused; so are documents that Python's `json` would
read but that have no single meaning (a duplicate key: "the last wins" is one library's choice), that no
UTF-8 text can hold (a lone UTF-16 surrogate such as "\\ud800", which also breaks every later encode),
or that are nested deeper than any request needs (1,000 levels end in a RecursionError).

Request bodies of the API are parsed by webargs (through flask-smorest), which calls `json.loads` itself;
`ExactJSONParser` makes it parse them the same way as the app's JSON provider does.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, NoReturn

import flask
from flask.json.provider import DefaultJSONProvider
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request

from creditctl.domain.json_text import json_writer

MAX_DEPTH = 64  # arrays and objects inside each other; the deepest request body today has 2
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# PostgreSQL's text (and jsonb) cannot hold U+0000: no string of a request may, wherever it is, so that
# nothing accepted fails later in the database (a 500). The document says so (adapters/web/openapi.py).
NUL = "\x00"
NUL_ESCAPE = "\\u0000"  # how JSON carries U+0000: a raw one is invalid JSON
NUL_MESSAGE = "Must not contain U+0000 (NUL): no text here can hold it."
NUL_DETAIL = "The request holds U+0000 (NUL), which no text of this service can hold"


class JSONRefused(ValueError):
    """Valid JSON syntax that this service does not read; `field` names where (a dotted path)."""

    def __init__(self, message: str, *, field: str = "json", status: int = 422, detail: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status
        self.detail = detail


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_exact(s: str | bytes, **kwargs: Any) -> Any:
    """json.loads with non-integers as Decimal, NaN/Infinity/-Infinity refused (ValueError), and
    duplicate keys, lone surrogates and nesting deeper than MAX_DEPTH refused (JSONRefused)."""
    if isinstance(s, bytes | bytearray):
        s = s.decode(json.detect_encoding(s))  # strict: json.loads would let encoded surrogates through
    _check_depth(s)
    duplicates: dict[int, tuple[dict[str, Any], str]] = {}  # the object is kept so that its id stays its

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            keys = [k for k, _ in pairs]
            duplicates[id(obj)] = (obj, next(k for i, k in enumerate(keys) if k in keys[:i]))
        return obj

    kwargs.setdefault("parse_float", Decimal)
    kwargs.setdefault("parse_constant", _refuse_constant)
    kwargs.setdefault("object_pairs_hook", unique_keys)
    try:
        value = json.loads(s, **kwargs)
    except RecursionError:  # a backstop: _check_depth counts brackets outside strings the same way
        _too_deep()
    if duplicates:
        _refuse_duplicate(value, duplicates)
    if _SURROGATE_ESCAPE.search(s):  # a lone surrogate can only arrive escaped: UTF-8 cannot encode one
        found = _find(value, lambda v: isinstance(v, str) and _SURROGATE.search(v) is not None)
        if found is not None:
            path, text = found
            raise JSONRefused(
                f"Contains a lone UTF-16 surrogate ({_surrogate(text)}), which is not a character.",
                field=_join(path) if path else "json",
                detail="The request body holds a string with a lone UTF-16 surrogate escape",
            )
    return value


def _refuse_duplicate(value: Any, duplicates: dict[int, tuple[dict[str, Any], str]]) -> NoReturn:
    found = _find(value, lambda v: isinstance(v, dict) and id(v) in duplicates)
    if found is None:  # the object with the duplicate was itself overwritten by a duplicate: name its key
        path, key = (), next(iter(duplicates.values()))[1]
    else:
        path, key = found[0], duplicates[id(found[1])][1]
    raise JSONRefused(
        f"The key {_printable(key)!r} appears more than once; send each key once.",
        field=_join((*path, key)),
        detail=f"The request body has the key {_printable(key)!r} more than once",
    )


def _check_depth(text: str) -> None:
    if text.count("[") + text.count("{") <= MAX_DEPTH:  # the common case: nothing to count
        return
    depth = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_DEPTH:
            _too_deep()


def _too_deep() -> NoReturn:
    raise JSONRefused(
        f"Nested too deeply: at most {MAX_DEPTH} levels of arrays and objects.",
        status=400,
        detail="The request body is nested too deeply",
    )


def _find(value: Any, wanted: Any, path: tuple[str, ...] = ()) -> Any:
    """(path, node) of the first node (a key counts as a node of its object) that `wanted` accepts."""
    if wanted(value):
        return path, value
    items: Any = ()
    if isinstance(value, dict):
        for k in value:
            if wanted(k):
                return (*path, k), k
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    for k, v in items:
        found = _find(v, wanted, (*path, str(k)))
        if found is not None:
            return found
    return None


def _printable(text: str) -> str:
    """The text with any lone surrogate written as its escape: an answer must be encodable."""
    return _shown(text.encode("utf-8", "backslashreplace").decode("utf-8"))


def _shown(text: str) -> str:
    """The text with U+0000 written as its escape (a member name that holds one names a field)."""
    return text.replace(NUL, "\\u0000")


def _surrogate(text: str) -> str:
    match = _SURROGATE.search(text)
    return f"\\u{ord(match.group()):04x}" if match else "?"


def _join(path: tuple[str, ...]) -> str:
    return ".".join(_printable(p) for p in path)


class ExactJSONProvider(DefaultJSONProvider):
    ensure_ascii = False
    sort_keys = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads_exact(s, **kwargs)

    def answer(self, obj: Any, status: int) -> flask.Response:
        """`response(obj)` with `status`: the answer flask-smorest's response decorator builds, byte for
        byte (its body is `answer_body(obj)`)."""
        return self._app.response_class(self.answer_body(obj), status=status, mimetype=self.mimetype)

    def answer_body(self, obj: Any) -> bytes:
        """The body `response(obj)` writes. Compact (out of debug mode), the document is written by one C
        encoder made once: json.dumps makes a JSONEncoder, and JSONEncoder.encode a C encoder, on every
        call."""
        if (self.compact is None and self._app.debug) or self.compact is False:
            return f"{self.dumps(obj, indent=2)}\n".encode()
        return _COMPACT(obj).encode() + b"\n"


# What ExactJSONProvider.response's json.dumps call makes out of debug mode (its settings, compact), made
# once (creditctl/domain/json_text.py).
_COMPACT = json_writer(
    ExactJSONProvider.default,
    sort_keys=ExactJSONProvider.sort_keys,
    ensure_ascii=ExactJSONProvider.ensure_ascii,
)


def plain_json_body() -> Any:
    """The request's JSON body as ExactJSONParser reads it, for a view that reads it itself; None when the
    request has no JSON body or one this service does not read (the parser, asked then, says why)."""
    req = flask.request
    if not is_json_request(req):
        return None
    try:
        return loads_exact(req.get_data(cache=True).decode("utf-8"))
    except ValueError:  # invalid JSON or UTF-8, a duplicate key, too deep...: all ValueErrors
        return None


class ExactJSONParser(FlaskParser):
    """webargs' Flask parser, reading JSON bodies with `loads_exact`: a NaN literal is invalid JSON (400);
    a duplicate key, a lone surrogate or U+0000 is 422 naming the field, nesting too deep 400. A query
    parameter holding U+0000 is 422 naming it."""

    def _raw_load_json(self, req: flask.Request) -> Any:
        if not is_json_request(req):
            return core.missing
        text = req.get_data(cache=True).decode("utf-8")  # JSON on the wire is UTF-8 (RFC 8259)
        try:
            value = loads_exact(text)
            if NUL_ESCAPE in text:  # a substring search: what almost every body costs
                refuse_nul(value)
            return value
        except json.JSONDecodeError:
            raise  # webargs tells an empty body from invalid JSON by its `doc`
        except JSONRefused as exc:
            _refuse(exc)
        except ValueError as exc:
            raise json.JSONDecodeError(str(exc), text, 0) from None

    def load_querystring(self, req: flask.Request, schema: Any) -> Any:
        for name, value in req.args.items(multi=True):
            if NUL in name or NUL in value:
                where = _shown(name)
                abort(422, messages={"query": {where: [NUL_MESSAGE]}}, detail=NUL_DETAIL)
        return super().load_querystring(req, schema)


def refuse_nul(value: Any) -> None:
    """Raise JSONRefused naming the first string (or member name) of `value` holding U+0000."""
    found = _find(value, lambda v: isinstance(v, str) and NUL in v)
    if found is not None:
        path, _ = found
        raise JSONRefused(NUL_MESSAGE, field=_join(path) if path else "json", detail=NUL_DETAIL)


def _refuse(exc: JSONRefused) -> NoReturn:
    messages = {"json": [exc.message]} if exc.field == "json" else {"json": {exc.field: [exc.message]}}
    abort(exc.status, exc=exc, messages=messages, detail=exc.detail)
