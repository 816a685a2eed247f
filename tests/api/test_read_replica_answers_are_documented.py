"""The operations that read the read replica (CREDITCTL_READ_DATABASE_URL: the reports, JSON and CSV;
docs/replication.md) answer only what /openapi.json declares for them: each status they are seen to give,
each header they send with it (Retry-After, Data-As-Of), and for each problem its type, by its code, in the
answer's description. Seen with a replica that answers, one that has replayed nothing yet (the exposure
report: 503 unavailable.read_replica) and one that does not answer (503 unavailable.database)."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from adapters.sql.engine import make_engine
from adapters.sql.reports import SqlReportQueries
from adapters.web.app import create_app
from adapters.web.problems import PROBLEM_TYPE_BASE
from creditctl.ports.reports import ReportQueries
from creditctl.services.context import AppContext
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.api

SENT_HEADERS = ("Retry-After", "Data-As-Of")


class NothingReplayed:
    """Report queries on a replica that has replayed no commit since it started: it cannot say how fresh
    its data are (as_of None); the figures themselves read as the wrapped queries do."""

    def __init__(self, reports: ReportQueries) -> None:
        self._reports = reports

    def as_of(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reports, name)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reading(context: AppContext, reports: ReportQueries) -> FlaskClient:
    """The app of an instance whose reports read `reports` (a replica's), everything else the primary."""
    replica = dataclasses.replace(context, reports=reports, live_reports=context.reports)
    return create_app(replica, {"TESTING": True}).test_client()


@pytest.fixture
def replicas(context: AppContext) -> Iterator[dict[str, FlaskClient]]:
    away = make_engine(f"postgresql+psycopg://creditctl@127.0.0.1:{closed_port()}/creditctl")
    assert context.reports is not None
    yield {
        "answering": reading(context, context.reports),
        "nothing replayed": reading(context, NothingReplayed(context.reports)),
        "away": reading(context, SqlReportQueries(away)),
    }
    away.dispose()


def replica_operations(client: FlaskClient) -> list[str]:
    """The documented paths whose views read the report queries: the reports blueprint's."""
    rules = client.application.url_map.iter_rules()
    return sorted(rule.rule for rule in rules if rule.endpoint.startswith("reports."))


def probes(client: FlaskClient, path: str, keys: dict[str, str]) -> Iterator[tuple[str, TestResponse]]:
    yield "no key", client.get(path)
    for role in ("orders", "auditor", "admin"):
        yield role, client.get(path, headers={"Authorization": f"Bearer {keys[role]}"})
    auditor = {"Authorization": f"Bearer {keys['auditor']}"}
    yield "a bad zone", client.get(path, query_string={"tz": "Nowhere/Nothing"}, headers=auditor)


def undeclared(spec: dict[str, Any], path: str, probe: str, r: TestResponse) -> list[str]:
    """What the answer `r` to GET `path` gives that the document does not declare for it."""
    where = f"GET {path} ({probe}) {r.status_code}"
    documented = spec["paths"][path]["get"]["responses"].get(str(r.status_code))
    if documented is None:
        return [f"{where}: status not declared"]
    faults = [
        f"{where}: header {name} not declared"
        for name in SENT_HEADERS
        if name in r.headers and name not in documented.get("headers", {})
    ]
    if r.mimetype == "application/problem+json":
        code = r.get_json()["type"].removeprefix(PROBLEM_TYPE_BASE)
        if r.status_code >= 500 and code not in documented["description"]:
            faults.append(f"{where}: problem {code} not named in {documented['description']!r}")
    return faults


def test_every_answer_of_an_operation_reading_the_replica_is_declared(
    replicas: dict[str, FlaskClient], keys: dict[str, str]
) -> None:
    spec = replicas["answering"].get("/openapi.json").json
    paths = replica_operations(replicas["answering"])
    assert len(paths) == 6, paths  # decisions, exposure, upstream, each also as .csv
    faults, seen = [], set()
    for replica, client in replicas.items():
        for path in paths:
            for probe, r in probes(client, path, keys):
                seen.add((replica, r.status_code))
                faults += undeclared(spec, path, probe, r)
    assert not faults, "\n".join(faults)
    assert {s for _, s in seen} >= {200, 401, 403, 422, 503}, seen


def test_a_replica_that_replayed_nothing_stops_only_the_picture_of_now(
    replicas: dict[str, FlaskClient], keys: dict[str, str]
) -> None:
    auditor = {"Authorization": f"Bearer {keys['auditor']}"}
    client = replicas["nothing replayed"]
    for path in replica_operations(client):
        r = client.get(path, headers=auditor)
        if "/exposure" in path:
            body = assert_problem(r, 503)
            assert body["type"] == f"{PROBLEM_TYPE_BASE}unavailable/read_replica", body
            assert r.headers["Retry-After"] == "5"
        else:
            assert r.status_code == 200 and "Data-As-Of" not in r.headers, (path, r.status_code)


def test_a_replica_that_does_not_answer_is_503_database_unavailable(
    replicas: dict[str, FlaskClient], keys: dict[str, str]
) -> None:
    auditor = {"Authorization": f"Bearer {keys['auditor']}"}
    client = replicas["away"]
    for path in replica_operations(client):
        body = assert_problem(client.get(path, headers=auditor), 503)
        assert body["type"] == f"{PROBLEM_TYPE_BASE}unavailable/database", (path, body)
