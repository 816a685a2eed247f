"""Something done to a unit of work just before the first commit any thread makes with it (a slow
commit, a connection killed under it); the commit then goes on as usual."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest


def before_the_first_commit(
    monkeypatch: pytest.MonkeyPatch, unit_of_work: type, action: Callable[[Any], None]
) -> threading.Event:
    """Patch `unit_of_work.commit` so that its first call runs `action(unit)` first; the event is set once
    it has. Later commits, and every commit's own work, are as before."""
    real_commit = unit_of_work.commit
    done = threading.Event()

    def commit(self: Any) -> None:
        if not done.is_set():
            done.set()
            action(self)
        real_commit(self)

    monkeypatch.setattr(unit_of_work, "commit", commit)
    return done
