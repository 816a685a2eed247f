"""The PostgreSQL role the service runs as: what it needs, and on the audit trail INSERT and SELECT only.

Migrations run as the tables' owner (CREDITCTL_MIGRATE_DATABASE_URL); the service as another role
(CREDITCTL_DATABASE_URL's user), which `creditctl db roles` creates or brings to exactly these grants.
An owner can disable the append-only triggers (ALTER TABLE … DISABLE TRIGGER) and rewrite the trail; a
role that owns nothing and holds no UPDATE, DELETE or TRUNCATE on the audit tables cannot. Run it again
after every upgrade: a new table is granted when it runs."""

from __future__ import annotations

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from adapters.sql.engine import make_engine

AUDIT_TABLES = ("audit_events", "audit_seals")
# Ends a transaction left open (a process stopped mid-transaction): an event's time is its INSERT's, so
# an open transaction is the one way an event can reach the sealer late; see SEAL_TOLERANCE_S.
IDLE_IN_TRANSACTION_TIMEOUT = "20s"


class RoleSetupError(Exception):
    """The app role cannot be set up as asked (not PostgreSQL, same role as the owner, a superuser …)."""


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def role_statements(role: str, password: str | None, database: str) -> list[str]:
    """The SQL that makes `role` the service's role on `database` (schema public), in order."""
    r = ident(role)
    audit = ", ".join(AUDIT_TABLES)
    return [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {literal(role)}) THEN "
        f"CREATE ROLE {r} LOGIN; END IF; END $$",
        f"ALTER ROLE {r} WITH LOGIN" + (f" PASSWORD {literal(password)}" if password else ""),
        f"ALTER ROLE {r} IN DATABASE {ident(database)} SET idle_in_transaction_session_timeout = "
        f"{literal(IDLE_IN_TRANSACTION_TIMEOUT)}",
        f"GRANT CONNECT ON DATABASE {ident(database)} TO {r}",
        f"GRANT USAGE ON SCHEMA public TO {r}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {r}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {r}",
        f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {audit} FROM {r}",
        # The sealer's mark: read and moved, never removed or added to (a missing row would make every
        # pass read the whole trail).
        f"REVOKE INSERT, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_seal_mark FROM {r}",
        f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {r}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {r}",
    ]


def _refuse_unsafe(conn: Connection, role: str, owner: str) -> None:
    """The app role must be none of what can rewrite the trail: the owner, a superuser (or a role with
    other powers over roles and databases), a member of the tables' owner, the owner of any table. An
    existing role's attributes are checked, not changed (only a superuser may change some of them)."""
    if role == owner:
        raise RoleSetupError(
            f"the service's role {role!r} is the migrations' role: give CREDITCTL_DATABASE_URL another user"
        )
    row = conn.execute(
        text(
            "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls AS mighty "
            "FROM pg_roles WHERE rolname = :r"
        ),
        {"r": role},
    ).first()
    if row is not None and row.mighty:
        raise RoleSetupError(
            f"{role!r} is a superuser or may create roles or databases, replicate or bypass row security: "
            "give the service a plain role"
        )
    owners = (
        conn.execute(text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"))
        .scalars()
        .all()
    )
    if role in owners:
        raise RoleSetupError(f"{role!r} owns tables of this database: run the migrations as another role")
    if row is not None:
        for table_owner in owners:
            member = conn.execute(
                text("SELECT pg_has_role(:r, :o, 'MEMBER')"), {"r": role, "o": table_owner}
            ).scalar()
            if member:
                raise RoleSetupError(f"{role!r} is a member of {table_owner!r}, the tables' owner")


def setup_app_role(owner_url: str, app_url: str) -> str:
    """Create or update the role of `app_url` (its user and password) through `owner_url`; returns the
    role's name. Raises RoleSetupError when that would be unsafe or is not PostgreSQL."""
    owner, app = make_url(owner_url), make_url(app_url)
    if owner.get_backend_name() != "postgresql" or app.get_backend_name() != "postgresql":
        raise RoleSetupError("roles are PostgreSQL's: SQLite has none (whoever can write the file owns it)")
    if not app.username:
        raise RoleSetupError("CREDITCTL_DATABASE_URL names no user for the service to run as")
    engine = make_engine(owner_url, pool_size=1, max_overflow=0)
    try:
        with engine.begin() as conn:
            current = conn.execute(text("SELECT current_user")).scalar_one()
            _refuse_unsafe(conn, app.username, current)
            cursor = conn.connection.cursor()  # no parameters: a password is taken as written
            for statement in role_statements(app.username, app.password, app.database or ""):
                cursor.execute(statement)
    finally:
        engine.dispose()
    return app.username
