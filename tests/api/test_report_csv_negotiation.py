"""A report in CSV is reachable from the document: text/csv is documented as its own content, chosen by the
Accept header or `format=csv` at the report's path, and the only content at its `.csv` twin (a generated
client reads one content type per answer: it parsed the CSV as JSON and crashed)."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.cli.backtest_jobs import run_queued
from creditctl.services.context import AppContext
from tests.api.conftest import Api, order
from tests.api.test_reports_api import ROUTES, get

pytestmark = pytest.mark.api


def auditor(api: Api, accept: str) -> dict[str, str]:
    return {**api.auth("auditor"), "Accept": accept}


class TestContentNegotiation:
    @pytest.mark.parametrize("path", ROUTES)
    def test_an_accept_header_preferring_csv_gets_csv(self, api: Api, path: str) -> None:
        api.decide(order(amount="100.00"))
        r = api.client.get(path, headers=auditor(api, "text/csv"))
        assert (r.status_code, r.mimetype) == (200, "text/csv")
        assert r.get_data(as_text=True).startswith("section,")
        assert r.get_data() == get(api, path, format="csv").get_data()

    @pytest.mark.parametrize("accept", ["*/*", "application/json", "application/json, text/csv;q=0.5"])
    def test_json_stays_the_default(self, api: Api, accept: str) -> None:
        r = api.client.get(ROUTES[0], headers=auditor(api, accept))
        assert (r.status_code, r.mimetype) == (200, "application/json")

    def test_the_format_parameter_still_decides_when_given(self, api: Api) -> None:
        assert get(api, ROUTES[1], format="csv").mimetype == "text/csv"
        r = api.client.get(ROUTES[1], query_string={"format": "json"}, headers=auditor(api, "text/csv"))
        assert r.mimetype == "application/json"

    def test_backtest_changes_follow_the_accept_header_too(self, api: Api, context: AppContext) -> None:
        period = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}
        run = api.client.post("/v1/rule-sets/1/backtest", json=period, headers=api.auth("admin")).json
        run_queued(context)  # a backtest is a job: the worker runs it
        r = api.client.get(f"/v1/backtests/{run['id']}/changes", headers=auditor(api, "text/csv"))
        assert (r.status_code, r.mimetype) == (200, "text/csv")


class TestTheCsvTwins:
    @pytest.mark.parametrize("path", ROUTES)
    def test_each_report_has_a_csv_path_answering_what_format_csv_does(self, api: Api, path: str) -> None:
        api.decide(order(amount="100.00"))
        twin = get(api, f"{path}.csv")
        assert (twin.status_code, twin.mimetype) == (200, "text/csv")
        assert twin.headers["Content-Disposition"].endswith('.csv"')
        assert twin.get_data() == get(api, path, format="csv").get_data()

    def test_a_csv_path_checks_keys_and_parameters_as_its_report_does(self, api: Api) -> None:
        assert get(api, "/v1/reports/decisions.csv", None).status_code == 401
        assert get(api, "/v1/reports/decisions.csv", "orders").status_code == 403
        r = get(api, "/v1/reports/decisions.csv", **{"from": "2026-11-30", "to": "2026-11-29"})
        assert r.status_code == 422 and "to" in r.json["errors"]

    def test_the_document_gives_csv_its_own_content_and_the_twins_nothing_else(self, client: Any) -> None:
        paths = client.get("/openapi.json").json["paths"]
        for path in ROUTES:
            both = paths[path]["get"]["responses"]["200"]["content"]
            assert list(both) == ["application/json", "text/csv"], path
            only = paths[f"{path}.csv"]["get"]["responses"]["200"]["content"]
            assert list(only) == ["text/csv"] and only["text/csv"]["schema"]["type"] == "string", path
