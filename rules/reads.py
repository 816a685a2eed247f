"""Pick a few keys out of a mapping into a new dict, fast: the trace's `reads` and `params`.

Specialised closures for one to three keys build a dict literal, which is half the cost of a
comprehension; the evaluation loop builds one per rule per call. The result is a plain dict,
so storing a trace (dict(...), json) costs nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Getter = Callable[[str], Any]
Reader = Callable[[Getter], dict[str, Any]]


def reader(keys: tuple[str, ...]) -> Reader:
    """A function taking `mapping.get` and returning {key: mapping.get(key)} for `keys`."""
    if len(keys) == 1:
        (a,) = keys
        return lambda get: {a: get(a)}
    if len(keys) == 2:
        a, b = keys
        return lambda get: {a: get(a), b: get(b)}
    if len(keys) == 3:
        a, b, c = keys
        return lambda get: {a: get(a), b: get(b), c: get(c)}
    return lambda get: {key: get(key) for key in keys}
