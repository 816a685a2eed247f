"""The Flask class the service runs: Flask, with the check "is this view a coroutine?" made once per
function instead of on every call."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from flask import Flask

MAX_KEPT = 1024  # more than the app registers (views, hooks, handlers: ~200)


class CreditctlFlask(Flask):
    """Flask asks `ensure_sync` about every view, hook and error handler of every request (nine times a
    decision), and each answer inspects the function's code flags (~1 µs each); the functions are the
    module-level ones registered at start-up, so each answer is kept (up to MAX_KEPT functions)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if type(func) is not types.FunctionType:  # bound methods, partials: not kept, asked each time
            return super().ensure_sync(func)
        sync = self._sync.get(func)
        if sync is None:
            sync = super().ensure_sync(func)
            if len(self._sync) < MAX_KEPT:  # a closure made per request (after_this_request) is not kept
                self._sync[func] = sync
        return sync
