"""bench only: the production wsgi.py with the audit trail's insert turned into a no-op, so bench/bench.py
--audit-cost can measure what the audit costs a decision against the same service without it, in one
run. The service itself has no switch to turn its audit off; this folder is never deployed.

Run as `creditctl serve` with this folder as the working directory (gunicorn imports `wsgi:app` from it).
"""

from adapters.sql.audit import SqlAuditLog


def _no_audit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    return None


SqlAuditLog.append = _no_audit  # type: ignore[method-assign]

import adapters.bootstrap as _bootstrap  # noqa: E402

app = _bootstrap.create_wsgi_app()
