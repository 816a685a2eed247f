"""Database failures told to an operator: which database, what is wrong with it, how to choose another."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

HOW_TO_CHOOSE = (
    "Choose the database with CREDITCTL_DATABASE_URL, or CREDITCTL_INSTANCE_PATH for the folder of "
    "the default SQLite file (by default the instance folder of the project's checkout, whatever folder "
    "the command runs in)."
)
_MISSING_SCHEMA = ("no such table", "no such column", "undefinedtable", "undefinedcolumn", "does not exist")


def shown_url(url: str) -> str:
    """The URL without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unreadable URL)"


def explain_database_error(exc: BaseException, url: str) -> str | None:
    """An operator's explanation of a database error met by a command, or None for any other error."""
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig if exc.orig is not None else exc
    first_line = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    where = shown_url(url)
    text = f"{type(orig).__name__} {first_line}".lower()
    if any(marker in text for marker in _MISSING_SCHEMA):
        return (
            f"the database {where} is not migrated ({first_line}).\n"
            f"If it is the one you meant, run `creditctl db upgrade` to create or update its tables. "
            f"{HOW_TO_CHOOSE}"
        )
    if exc.connection_invalidated or "connect" in text or "unable to open" in text:
        return f"cannot use the database {where}: {first_line}\n{HOW_TO_CHOOSE}"
    return f"the database {where} failed: {first_line}\n{HOW_TO_CHOOSE}"
