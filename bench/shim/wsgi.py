"""bench shim for `creditctl serve` (run with this folder as the working directory): the production
wsgi.py, but every engine gets SQLAlchemy's `preserve_rowcount` execution option.

Why: with SQLAlchemy 2.1 and psycopg 3.3, `CursorResult.rowcount` of an INSERT is -1 (SQLAlchemy only
memoizes rowcount for UPDATE/DELETE and closes the INSERT's cursor; psycopg 3.3 resets rowcount on
close). `SqlDecisionRepository.add_new` relies on `rowcount == 1`, so on PostgreSQL every new decision
is taken for a lost race and answered 409. bench/bench.py uses this shim only when a probe decision
shows that bug, and labels the figures "(rowcount shim)". The option costs nothing measurable.
"""

import adapters.bootstrap as _bootstrap

_make_engine = _bootstrap.make_engine


def _engine_preserving_rowcount(url, **kwargs):  # type: ignore[no-untyped-def]
    options = dict(kwargs.pop("execution_options", None) or {})
    options["preserve_rowcount"] = True
    return _make_engine(url, execution_options=options, **kwargs)


_bootstrap.make_engine = _engine_preserving_rowcount

app = _bootstrap.create_wsgi_app()
