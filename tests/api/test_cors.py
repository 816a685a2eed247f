"""CORS: only the exact origins of CREDITCTL_CORS_ORIGINS, only /v1/* and /api/*, preflights answered 204
without an API key, no credentials, no wildcard; none configured means no CORS header at all."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from adapters.bootstrap import load_settings
from adapters.web.app import create_app
from adapters.web.cors import parse_origins
from creditctl.services.context import AppContext
from tests.api.conftest import CUSTOMER_A

pytestmark = pytest.mark.api

ERP = "https://erp.example.com"
LOCAL = "http://127.0.0.1:5173"
EVIL = "https://evil.example.net"
BALANCE = f"/api/haier/balance/?customer_code={CUSTOMER_A}"


@pytest.fixture
def cors_app(context: AppContext) -> Flask:
    return create_app(context, {"TESTING": True, "CREDITCTL_CORS_ORIGINS": f"{ERP}, {LOCAL}"})


@pytest.fixture
def cors_client(cors_app: Flask) -> FlaskClient:
    return cors_app.test_client()


def preflight(client: FlaskClient, path: str, origin: str, method: str = "GET", headers: str = "") -> Any:
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        h["Access-Control-Request-Headers"] = headers
    return client.options(path, headers=h)


def cors_headers(r: Any) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.lower().startswith("access-control-")}


class TestAnAllowedOrigin:
    @pytest.mark.parametrize("origin", [ERP, LOCAL])
    def test_a_call_is_answered_with_that_origin_and_vary(
        self, cors_client: FlaskClient, keys: dict[str, str], origin: str
    ) -> None:
        r = cors_client.get(BALANCE, headers={"Origin": origin, "X-API-Key": keys["orders"]})
        assert r.status_code == 200 and r.json["success"] is True
        assert r.headers.getlist("Access-Control-Allow-Origin") == [origin]
        assert "Origin" in r.vary
        assert "Access-Control-Allow-Credentials" not in r.headers
        assert "X-Request-ID" in r.headers["Access-Control-Expose-Headers"]

    def test_errors_carry_the_headers_too_so_the_page_can_read_them(self, cors_client: FlaskClient) -> None:
        seed = cors_client.get(BALANCE, headers={"Origin": ERP})
        problem = cors_client.get("/v1/decisions/PO-1", headers={"Origin": ERP})
        for r in (seed, problem):
            assert r.status_code == 401
            assert r.headers["Access-Control-Allow-Origin"] == ERP
        assert "WWW-Authenticate" in seed.headers["Access-Control-Expose-Headers"]

    @pytest.mark.parametrize(
        ("path", "method"),
        [("/api/haier/balance/", "GET"), ("/v1/decisions", "POST"), ("/v1/admin/haier/configs/x", "PUT")],
    )
    def test_a_preflight_is_204_without_a_key(self, cors_client: FlaskClient, path: str, method: str) -> None:
        r = preflight(cors_client, path, ERP, method, "authorization, x-api-key, content-type")
        assert r.status_code == 204, r.get_data(as_text=True)
        assert r.get_data() == b""
        assert r.headers["Access-Control-Allow-Origin"] == ERP
        methods = {m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")}
        assert method in methods and "PATCH" not in methods
        allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
        assert allowed >= {"authorization", "x-api-key", "content-type"}
        assert int(r.headers["Access-Control-Max-Age"]) > 0
        assert "Origin" in r.vary

    def test_a_preflight_allows_the_idempotency_key_and_if_match(self, cors_client: FlaskClient) -> None:
        r = preflight(cors_client, "/v1/decisions/PO-1/settle", ERP, "POST", "idempotency-key, if-match")
        assert r.status_code == 204, r.get_data(as_text=True)
        allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
        assert allowed == {"idempotency-key", "if-match"}

    def test_a_page_can_read_etag_and_retry_after(self, cors_client: FlaskClient) -> None:
        r = cors_client.get("/v1/decisions/x", headers={"Origin": ERP})
        exposed = {h.strip().lower() for h in r.headers["Access-Control-Expose-Headers"].split(",")}
        assert exposed >= {"etag", "retry-after", "x-request-id"}

    def test_a_preflight_offers_only_the_headers_the_api_reads(self, cors_client: FlaskClient) -> None:
        r = preflight(cors_client, "/v1/decisions", ERP, "POST", "content-type, x-forwarded-for, cookie")
        assert r.status_code == 204
        assert r.headers["Access-Control-Allow-Headers"].lower() == "content-type"

    def test_origins_compare_case_insensitively_and_never_as_patterns(self, cors_client: FlaskClient) -> None:
        upper = cors_client.get("/v1/decisions/x", headers={"Origin": "HTTPS://ERP.EXAMPLE.COM"})
        assert upper.headers["Access-Control-Allow-Origin"] == "HTTPS://ERP.EXAMPLE.COM"
        for lookalike in (
            "https://erp.example.com.evil.net",
            "https://xerp.example.com",
            "http://erp.example.com",
            "https://erp.example.com:8443",
            "http://127.0.0.1:51730",
            "null",
        ):
            r = cors_client.get("/v1/decisions/x", headers={"Origin": lookalike})
            assert cors_headers(r) == {}, lookalike


class TestADisallowedOrigin:
    def test_gets_no_cors_header_on_a_call_or_a_preflight(
        self, cors_client: FlaskClient, keys: dict[str, str]
    ) -> None:
        call = cors_client.get(BALANCE, headers={"Origin": EVIL, "X-API-Key": keys["orders"]})
        assert call.status_code == 200  # the server answers; the browser keeps it from the page
        assert cors_headers(call) == {}
        assert "Origin" in call.vary  # a cache must not hand this answer to an allowed origin
        pre = preflight(cors_client, "/v1/decisions", EVIL, "POST", "authorization")
        assert cors_headers(pre) == {}
        assert pre.status_code != 204

    def test_a_call_without_origin_gets_no_cors_header(self, cors_client: FlaskClient) -> None:
        r = cors_client.get("/v1/decisions/x")
        assert cors_headers(r) == {}  # the configured origins are not told to anyone

    def test_paths_outside_v1_and_api_get_none(self, cors_client: FlaskClient) -> None:
        for path in ("/healthz", "/openapi.json", "/metrics"):
            r = cors_client.get(path, headers={"Origin": ERP})
            assert cors_headers(r) == {}, path


class TestNotConfigured:
    def test_no_origins_no_cors_headers_at_all(self, client: FlaskClient, keys: dict[str, str]) -> None:
        r = client.get(BALANCE, headers={"Origin": ERP, "X-API-Key": keys["orders"]})
        assert r.status_code == 200 and cors_headers(r) == {}
        assert "Origin" not in r.vary
        pre = preflight(client, "/v1/decisions", ERP, "POST", "authorization")
        assert cors_headers(pre) == {}


class TestTheSetting:
    def test_origins_are_normalised(self) -> None:
        assert parse_origins(" https://ERP.example.com/ ,http://127.0.0.1:5173,,https://erp.example.com") == (
            ERP,
            LOCAL,
        )
        assert parse_origins("") == ()
        assert parse_origins("http://[::1]:8080") == ("http://[::1]:8080",)

    @pytest.mark.parametrize(
        "bad",
        [
            "*",
            "https://*.example.com",
            "https://erp.example.com/app",
            "https://erp.example.com?x=1",
            "erp.example.com",
            "ftp://erp.example.com",
            "null",
            "https://user@erp.example.com",
            "https://erp.example.com(.*)",
        ],
    )
    def test_anything_but_an_exact_origin_is_refused_at_start(self, bad: str) -> None:
        with pytest.raises(ValueError, match="not an origin"):
            parse_origins(bad)
        with pytest.raises(SystemExit, match="CREDITCTL_CORS_ORIGINS"):
            load_settings({"CREDITCTL_CORS_ORIGINS": bad})

    def test_the_setting_is_read_from_the_environment(self) -> None:
        assert load_settings({}).cors_origins == ()
        assert load_settings({"CREDITCTL_CORS_ORIGINS": f"{ERP},{LOCAL}"}).cors_origins == (ERP, LOCAL)
