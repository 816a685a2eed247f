"""How views reach the wired application: the AppContext the composition root handed to create_app."""

from __future__ import annotations

from flask import current_app

from creditctl.services.context import AppContext


def ctx() -> AppContext:
    return current_app.extensions["creditctl"]  # type: ignore[no-any-return]
