"""`creditctl reports decisions|exposure|upstream`: the figures of /v1/reports, as JSON or CSV."""

from __future__ import annotations

import json

from tests.api.conftest import Api, order
from tests.api.test_cli import cli  # noqa: F401  (the fixture)


class TestReportsCli:
    def test_the_cli_prints_the_same_figures_as_the_api(self, cli, api: Api) -> None:  # noqa: F811
        api.decide(order(amount="100.00"))
        printed = json.loads(cli("reports", "decisions", "--tz", "UTC").output)
        served = api.client.get("/v1/reports/decisions?tz=UTC", headers=api.auth("auditor")).json
        assert printed == served and printed["decisions"] == 1
        exposure = json.loads(cli("reports", "exposure", "--within-hours", "200").output)
        assert exposure["total_exposure"] == "100.00"
        assert exposure["expiring_holds"]["count"] == 1

    def test_csv_and_a_refused_period(self, cli) -> None:  # noqa: F811
        assert cli("reports", "upstream", "--csv").output.startswith("section,operation,error_code,")
        refused = cli("reports", "decisions", "--from", "2026-11-30", "--to", "2026-11-01", ok=False)
        assert refused.exit_code == 1 and "'to' must be after 'from'" in refused.output
