"""GET /v1/reports/*: auditor and admin, JSON or CSV, periods validated, a limited key sees its own rows."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from creditctl.services.api_keys import create_api_key
from creditctl.services.context import AppContext
from tests.api.conftest import CUSTOMER_A, CUSTOMER_B, Api, order

ROUTES = ("/v1/reports/decisions", "/v1/reports/exposure", "/v1/reports/upstream")


def get(api: Api, path: str, key: str | None = "auditor", **query: str):  # type: ignore[no-untyped-def]
    return api.client.get(path, query_string=query, headers=api.auth(key))


class TestReportsApi:
    def test_only_auditor_and_admin_keys_read_reports(self, api: Api) -> None:
        for path in ROUTES:
            assert get(api, path, None).status_code == 401
            assert get(api, path, "orders").status_code == 403
            assert get(api, path, "auditor").status_code == 200
            assert get(api, path, "admin").status_code == 200

    def test_decisions_are_counted_per_day_outcome_and_account_with_money_as_strings(self, api: Api) -> None:
        assert api.decide(order(amount="100.00")).status_code == 201
        assert api.decide(order(amount="200.50")).status_code == 201
        assert api.decide(order(amount="999999.00")).status_code == 201  # beyond available: block

        body = get(api, "/v1/reports/decisions").json

        assert body["tz"] == "Asia/Shanghai" and len(body["by_day"]) == 7
        assert body["decisions"] == 3
        assert body["outcomes"]["approve"] == {"decisions": 2, "amount": "300.50"}
        assert body["money"]["approved"] == "300.50"
        assert body["approval_rate"] == "0.6667"
        assert body["top_reasons"]["block"][0]["reason"] == "CREDIT_LIMIT_EXCEEDED"
        assert [a["customer_code"] for a in body["by_account"]] == [CUSTOMER_A]
        assert sum(d["decisions"] for d in body["by_day"]) == 3

    def test_csv_has_a_header_and_one_line_per_figure(self, api: Api) -> None:
        api.decide(order(amount="100.00"))
        for path in ROUTES:
            r = get(api, path, format="csv")
            assert r.status_code == 200 and r.mimetype == "text/csv"
            rows = list(csv.reader(io.StringIO(r.get_data(as_text=True))))
            assert rows[0][0] == "section" and len(rows) > 1
            assert all(len(row) == len(rows[0]) for row in rows)
        rows = list(csv.DictReader(io.StringIO(get(api, ROUTES[0], format="csv").get_data(as_text=True))))
        total = next(r for r in rows if r["section"] == "total" and r["outcome"] == "approve")
        assert (total["decisions"], total["amount"]) == ("1", "100.00")

    def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_written_as_text(self, api: Api) -> None:
        hostile = ('=HYPERLINK("evil.example","x")', "@SUM(1+1)", "+1+1", "-2+3")
        for n, order_id in enumerate(hostile):
            assert api.decide(order(order_id=order_id, amount=f"{n + 1}.00")).status_code == 201, order_id

        text = get(api, "/v1/reports/exposure", format="csv", within_hours="720").get_data(as_text=True)

        cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
        for order_id in hostile:
            assert "'" + order_id in cells and order_id not in cells, order_id
        assert not any(c.startswith(("=", "@", "+")) for c in cells)
        assert all(c.startswith("'") for c in cells if c.startswith("-"))  # no negative money here

    def test_bad_periods_and_zones_are_refused_with_422(self, api: Api) -> None:
        path = ROUTES[0]
        assert get(api, path, tz="Mars/Olympus").status_code == 422
        assert get(api, path, tz="../etc/passwd").status_code == 422
        assert get(api, path, **{"from": "2026-11-30", "to": "2026-11-30"}).status_code == 422
        assert get(api, path, **{"from": "2025-01-01", "to": "2026-11-30"}).status_code == 422
        assert get(api, path, **{"from": "2026-11-30T00:00:00"}).status_code == 422  # no offset
        assert get(api, path, **{"from": "yesterday"}).status_code == 422
        assert get(api, path, format="xml").status_code == 422
        assert get(api, ROUTES[1], within_hours="0").status_code == 422
        r = get(api, path, tz="America/New_York", **{"from": "2026-03-01", "to": "2026-04-01"})
        assert r.status_code == 200 and len(r.json["by_day"]) == 31  # across the DST change

    def test_a_key_limited_to_customers_sees_only_their_rows(self, api: Api, context: AppContext) -> None:
        api.decide(order(amount="100.00"))
        api.decide(order(amount="100.00", customer=CUSTOMER_B, group="GA10"))
        limited = create_api_key(
            name="aud-b", role="auditor", customers=[CUSTOMER_B], uow=context.uow(), clock=context.clock
        ).secret

        decisions = get(api, ROUTES[0], limited).json
        exposure = get(api, ROUTES[1], limited).json

        assert decisions["decisions"] == 1
        assert {a["customer_code"] for a in decisions["by_account"]} == {CUSTOMER_B}
        assert {a["customer_code"] for a in exposure["accounts"]} == {CUSTOMER_B}
        assert exposure["total_exposure"] == "100.00"


def test_calls_to_haier_are_recorded_and_reported_when_wired_by_bootstrap(
    sqlite_engine,
    clock,
    tmp_path,
    keys,  # type: ignore[no-untyped-def]
) -> None:
    from adapters.bootstrap import Settings, bootstrap
    from adapters.web.app import create_app
    from creditctl.services.customers import register_customer
    from tests.adapters.haier_support import (
        clear_upstream_tables,
        config_document,
        known_emulator_app,
        serving,
    )

    settings = Settings(
        instance_path=tmp_path / "haier-instance",
        database_url=str(sqlite_engine.url),
        balance_provider="haier",
        allow_loopback_urls=True,
    )
    ctx = bootstrap(settings, clock=clock, engine=sqlite_engine, database_clock=clock)
    register_customer("8800633175", uow=ctx.uow(), clock=clock)
    client = create_app(ctx, {"TESTING": True}).test_client()
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    try:
        with serving(known_emulator_app()) as emulator:
            assert (
                client.put(
                    "/v1/admin/haier/configs/emu", json=config_document(emulator.url), headers=admin
                ).status_code
                == 200
            )
            assert client.get("/v1/balances/8800633175?refresh=true", headers=admin).status_code == 200
        # called_at is this instance's wall clock (an observation), not the test's fake clock
        now = datetime.now(UTC)
        period = {"from": (now - timedelta(days=1)).isoformat(), "to": (now + timedelta(days=1)).isoformat()}
        body = client.get("/v1/reports/upstream", query_string=period, headers=admin).json
    finally:
        clear_upstream_tables(sqlite_engine)
    assert {op["operation"]: op["calls"] for op in body["by_operation"]} == {"balance": 1, "token": 1}
    assert body["success_rate"] == "1.0000" and body["retry_rate"] == "0.0000"
    assert body["p95_latency_ms"] > 0
