"""ETag and If-Match: the marks that document them (adapters/web/openapi.py) and the header, parsed.

If-Match is optional: a write without it is still never lost, because every conditional resource's
UPDATE is conditional on the revision read in the same transaction (a race is caught by the database,
and answered 409). With it, the caller also learns that the resource moved since *it* read it (412,
naming the current ETag in the answer's ETag header and in `errors`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import request

F = TypeVar("F", bound=Callable[..., Any])


def etagged(view: F) -> F:
    """Mark a view whose success answers carry the resource's ETag."""
    view.__dict__["_etag"] = True
    return view


def conditional(view: F) -> F:
    """Mark a view that takes If-Match (412 when it names another revision); its answers carry an ETag."""
    view.__dict__["_if_match"] = True
    view.__dict__["_etag"] = True
    return view


def if_match_tags() -> frozenset[str] | None:
    """The strong entity tags of If-Match, unquoted; None without the header or with `*` (any current
    revision). Weak tags never match (If-Match compares strongly, RFC 9110 13.1.1); nor does the empty
    tag "" (werkzeug reads it as None, whose use was a 500)."""
    if "If-Match" not in request.headers:
        return None
    tags = request.if_match
    if tags.star_tag:
        return None
    return frozenset(tag for tag in tags.as_set(include_weak=False) if tag is not None)
