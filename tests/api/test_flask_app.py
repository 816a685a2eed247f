"""The service's Flask class asks once per function whether it is a coroutine; otherwise it is Flask."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from adapters.web import flask_app
from adapters.web.flask_app import CreditctlFlask


def _view() -> str:
    return "ok"


async def _async_view() -> str:
    return "ok"


def test_ensure_sync_inspects_each_function_once(monkeypatch: pytest.MonkeyPatch) -> None:
    app = CreditctlFlask("probe")
    asked: list[Any] = []
    real = Flask.ensure_sync
    monkeypatch.setattr(Flask, "ensure_sync", lambda self, f: asked.append(f) or real(self, f))
    assert app.ensure_sync(_view) is _view
    assert app.ensure_sync(_view) is _view
    assert asked == [_view]


def test_a_coroutine_view_is_treated_as_flask_treats_it() -> None:
    def outcome(app: Flask) -> str:
        try:
            return "passed through" if app.ensure_sync(_async_view) is _async_view else "wrapped"
        except Exception as exc:  # without asgiref, Flask refuses async views: the same refusal
            return f"{type(exc).__name__}: {exc}"

    assert outcome(CreditctlFlask("a")) == outcome(Flask("b")) != "passed through"


def test_functions_made_per_request_are_not_kept_without_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flask_app, "MAX_KEPT", 10)
    app = CreditctlFlask("probe")
    for _ in range(50):
        app.ensure_sync(lambda: None)
    assert len(app._sync) == 10
