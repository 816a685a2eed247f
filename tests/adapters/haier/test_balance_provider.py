"""HaierBalanceProvider against `responses`: the happy path and the upstream fault matrix (item 7)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests
import responses

from creditctl.domain.balance import BalanceReport
from creditctl.ports.balance_provider import BalanceUnavailable

from .conftest import (
    BALANCE_URL,
    CUSTOMER,
    CUSTOMER_PASSWORD,
    ENTRIES,
    FALLBACK_PASSWORD,
    TOKEN,
    TOKEN_2,
    TOKEN_URL,
    FakeTime,
    LazyBody,
    add_balance,
    add_token,
    calls_to,
    envelope,
    lazy_reader,
    make_config,
    make_provider,
    sent_json,
)

pytestmark = pytest.mark.adapters


def fetch_error(provider, customer: str = CUSTOMER, timeout_s: float = 10) -> BalanceUnavailable:
    with pytest.raises(BalanceUnavailable) as caught:
        provider.fetch(customer, timeout_s=timeout_s)
    return caught.value


class TestHappyPath:
    def test_fetches_every_payer_account(self, mocked: responses.RequestsMock, fake_time: FakeTime) -> None:
        add_token(mocked)
        add_balance(mocked)
        report = make_provider(fake_time).fetch(CUSTOMER, timeout_s=10)
        assert isinstance(report, BalanceReport)
        assert report.customer_code == CUSTOMER
        assert report.source == "haier:test"
        assert report.fetched_at == fake_time.now()
        assert report.fetched_at.tzinfo is not None
        assert [(a.sale_group_code, a.amount) for a in report.accounts] == [
            ("1001", Decimal("1250000.00")),
            ("1002", Decimal("38000.50")),
        ]
        assert report.for_sale_group("1002").payer_account_code == "P-1002"

    def test_sends_code_password_and_bearer_token(self, mocked, fake_time) -> None:
        add_token(mocked)
        add_balance(mocked)
        make_provider(fake_time).fetch(CUSTOMER, timeout_s=10)
        (call,) = calls_to(mocked, BALANCE_URL)
        assert sent_json(call) == {"customerCode": CUSTOMER, "customerPassword": CUSTOMER_PASSWORD}
        assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"

    def test_sends_the_bare_token_when_the_scheme_is_none(self, mocked, fake_time) -> None:
        add_token(mocked)
        add_balance(mocked)
        make_provider(fake_time, make_config(auth_scheme="none")).fetch(CUSTOMER, timeout_s=10)
        assert calls_to(mocked, BALANCE_URL)[0].request.headers["Authorization"] == TOKEN

    def test_reuses_the_token_across_calls(self, mocked, fake_time) -> None:
        add_token(mocked)
        add_balance(mocked)
        provider = make_provider(fake_time)
        for _ in range(3):
            provider.fetch(CUSTOMER, timeout_s=10)
        assert len(calls_to(mocked, TOKEN_URL)) == 1
        assert len(calls_to(mocked, BALANCE_URL)) == 3

    def test_refreshes_the_token_ten_minutes_before_expiry(self, mocked, fake_time) -> None:
        add_token(mocked)
        add_balance(mocked)
        provider = make_provider(fake_time)
        provider.fetch(CUSTOMER, timeout_s=10)
        fake_time.advance(49 * 60 + 59)
        provider.fetch(CUSTOMER, timeout_s=10)
        assert len(calls_to(mocked, TOKEN_URL)) == 1
        fake_time.advance(2)
        provider.fetch(CUSTOMER, timeout_s=10)
        assert len(calls_to(mocked, TOKEN_URL)) == 2

    def test_keeps_a_still_valid_token_when_an_early_refresh_fails(self, mocked, fake_time) -> None:
        add_token(mocked)
        add_balance(mocked)
        provider = make_provider(fake_time)
        provider.fetch(CUSTOMER, timeout_s=10)
        mocked.replace(responses.POST, TOKEN_URL, status=503)
        fake_time.advance(55 * 60)  # in the refresh window, 5 minutes before expiry
        assert provider.fetch(CUSTOMER, timeout_s=10).accounts
        assert calls_to(mocked, BALANCE_URL)[-1].request.headers["Authorization"] == f"Bearer {TOKEN}"

    def test_fallback_customer_password(self, mocked, fake_time) -> None:
        add_token(mocked)
        add_balance(mocked)
        make_provider(fake_time, make_config(customer_password=FALLBACK_PASSWORD)).fetch(
            "8800000009", timeout_s=10
        )
        assert sent_json(calls_to(mocked, BALANCE_URL)[0])["customerPassword"] == FALLBACK_PASSWORD

    def test_customers_lists_the_configured_codes(self, fake_time) -> None:
        provider = make_provider(fake_time, make_config(customers={"2": "a", "1": "b"}))
        assert provider.customers() == ["1", "2"]

    def test_unknown_customer_is_refused_without_a_call(self, mocked, fake_time) -> None:
        error = fetch_error(make_provider(fake_time), customer="8800000009")
        assert (error.code, error.sent) == ("UNKNOWN_CUSTOMER", False)
        assert len(mocked.calls) == 0


class TestStatusFaults:
    @pytest.mark.parametrize(
        ("status", "code"),
        [
            (400, "BALANCE_QUERY_FAILED"),
            (403, "AUTH_FAILED"),
            (404, "BALANCE_QUERY_FAILED"),
            (422, "BALANCE_QUERY_FAILED"),
        ],
    )
    def test_client_errors_are_not_retried(self, mocked, fake_time, status: int, code: str) -> None:
        add_token(mocked)
        add_balance(mocked, {"error": "no"}, status=status)
        provider = make_provider(fake_time)
        assert fetch_error(provider).code == code
        assert len(calls_to(mocked, BALANCE_URL)) == 1
        assert fake_time.sleeps == []
        assert provider.state == "closed"

    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    def test_server_errors_are_retried_then_reported(self, mocked, fake_time, status: int) -> None:
        add_token(mocked)
        add_balance(mocked, {"error": "down"}, status=status)
        provider = make_provider(fake_time, breaker_threshold=100)
        error = fetch_error(provider)
        assert (error.code, error.sent) == ("SERVICE_UNAVAILABLE", True)
        assert len(calls_to(mocked, BALANCE_URL)) == 4  # first try + 3 retries

    def test_a_server_error_then_success(self, mocked, fake_time) -> None:
        add_token(mocked)
        add_balance(mocked, status=503)
        add_balance(mocked)
        assert make_provider(fake_time).fetch(CUSTOMER, timeout_s=10).accounts
        assert len(fake_time.sleeps) == 1

    def test_success_false_is_a_query_failure_with_the_description(self, mocked, fake_time) -> None:
        add_token(mocked)
        add_balance(mocked, envelope(None, success=False, description="customer password is incorrect"))
        error = fetch_error(make_provider(fake_time))
        assert error.code == "BALANCE_QUERY_FAILED"
        assert "customer password is incorrect" in str(error)
        assert len(calls_to(mocked, BALANCE_URL)) == 1

    def test_429_honours_retry_after(self, mocked, fake_time) -> None:
        add_token(mocked)
        add_balance(mocked, status=429, headers={"Retry-After": "2"})
        add_balance(mocked)
        assert make_provider(fake_time).fetch(CUSTOMER, timeout_s=10).accounts
        assert fake_time.sleeps == [pytest.approx(2.0)]

    def test_429_whose_retry_after_exceeds_the_deadline_is_reported_at_once(self, mocked, fake_time) -> None:
        add_token(mocked)
        add_balance(mocked, status=429, headers={"Retry-After": "30"})
        error = fetch_error(make_provider(fake_time), timeout_s=5)
        assert (error.code, error.retry_after_s) == ("RATE_LIMITED", 30.0)
        assert fake_time.sleeps == []

    def test_redirects_are_never_followed(self, mocked, fake_time) -> None:
        add_token(mocked)
        for target in ("http://127.0.0.1:8080/", "http://169.254.169.254/latest/meta-data/"):
            mocked.post(BALANCE_URL, status=302, headers={"Location": target})
        provider = make_provider(fake_time)
        for _ in range(2):
            error = fetch_error(provider)
            assert error.code == "UPSTREAM_MALFORMED"
            assert "redirect" in str(error)
        assert [c.request.url for c in mocked.calls] == [TOKEN_URL, BALANCE_URL, BALANCE_URL]


class TestNetworkFaults:
    def test_read_timeout_is_outcome_unknown(self, mocked, fake_time) -> None:
        add_token(mocked)
        mocked.post(BALANCE_URL, body=requests.ReadTimeout("read timed out"))
        error = fetch_error(make_provider(fake_time))
        assert (error.code, error.sent) == ("UPSTREAM_TIMEOUT", True)

    def test_connect_timeout_is_not_sent(self, mocked, fake_time) -> None:
        add_token(mocked)
        mocked.post(BALANCE_URL, body=requests.ConnectTimeout("connect timed out"))
        error = fetch_error(make_provider(fake_time))
        assert (error.code, error.sent) == ("UPSTREAM_TIMEOUT", False)

    def test_connection_refused_is_service_unavailable(self, mocked, fake_time) -> None:
        add_token(mocked)
        mocked.post(BALANCE_URL, body=requests.ConnectionError("connection refused"))
        assert fetch_error(make_provider(fake_time)).code == "SERVICE_UNAVAILABLE"

    def test_reset_mid_body_is_service_unavailable_and_retried(self, mocked, fake_time) -> None:
        add_token(mocked)
        mocked.post(BALANCE_URL, body=lazy_reader(LazyBody(200_000, break_after=70_000)))
        add_balance(mocked)
        provider = make_provider(fake_time)
        assert provider.fetch(CUSTOMER, timeout_s=10).accounts
        assert len(calls_to(mocked, BALANCE_URL)) == 2

    def test_reset_mid_body_every_time(self, mocked, fake_time) -> None:
        add_token(mocked)
        mocked.add_callback(
            responses.POST,
            BALANCE_URL,
            lambda request: (200, {}, lazy_reader(LazyBody(200_000, break_after=70_000))),
        )
        error = fetch_error(make_provider(fake_time))
        assert error.code == "SERVICE_UNAVAILABLE"
        assert "middle of its answer" in str(error)
        assert len(calls_to(mocked, BALANCE_URL)) == 3  # then the breaker opened


class TestBodies:
    @pytest.mark.parametrize(
        "body",
        [
            "not json at all",
            '{"success": true, "data": [{"saleGroupCode": "10',
            json.dumps(envelope([{**ENTRIES[0], "payerAccountBalance": "NaN"}])),
            json.dumps(envelope([{**ENTRIES[0], "payerAccountBalance": "1e30"}])),
            json.dumps(envelope([{**ENTRIES[0], "payerAccountBalance": "1000.005"}])),
            json.dumps(envelope([ENTRIES[1], {**ENTRIES[0], "payerAccountBalance": "-0.001"}])),
            '{"data": [{"saleGroupCode": "1", "payerAccountCode": "P", "payerAccountBalance": 1000.005}]}',
            json.dumps(envelope([{**ENTRIES[0], "payerAccountBalance": None}])),
            json.dumps(envelope(None)),
            "",
        ],
    )
    def test_malformed_answers_are_never_a_balance(self, mocked, fake_time, body: str) -> None:
        add_token(mocked)
        add_balance(mocked, body)
        error = fetch_error(make_provider(fake_time))
        assert error.code == "UPSTREAM_MALFORMED"
        assert len(calls_to(mocked, BALANCE_URL)) == 1  # malformed is not retried

    def test_nan_as_a_json_constant(self, mocked, fake_time) -> None:
        add_token(mocked)
        body = '{"data": [{"saleGroupCode": "1", "payerAccountCode": "P", "payerAccountBalance": NaN}]}'
        add_balance(mocked, body)
        assert fetch_error(make_provider(fake_time)).code == "UPSTREAM_MALFORMED"

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [("-1520.75", "-1520.75"), ('"-1520.75"', "-1520.75"), ("1000.500", "1000.50"), ('"0"', "0")],
    )
    def test_negative_and_exact_balances_are_kept_exactly(self, mocked, fake_time, raw, expected) -> None:
        add_token(mocked)
        body = (
            '{"success": true, "data": [{"saleGroupCode": "1", "payerAccountCode": "P", '
            f'"payerAccountBalance": {raw}}}]}}'
        )
        add_balance(mocked, body)
        (account,) = make_provider(fake_time).fetch(CUSTOMER, timeout_s=10).accounts
        assert account.amount == Decimal(expected)

    def test_a_third_decimal_is_malformed_and_says_so(self, mocked, fake_time) -> None:
        add_token(mocked)
        add_balance(mocked, envelope([ENTRIES[0], {**ENTRIES[1], "payerAccountBalance": "1000.005"}]))
        error = fetch_error(make_provider(fake_time))
        assert error.code == "UPSTREAM_MALFORMED"
        assert "entry 1 has a payerAccountBalance with more than two decimals" in str(error)
        assert "1000.005" not in str(error)  # says what is wrong, not the value

    def test_a_10_mb_body_is_refused_without_reading_it_all(self, mocked, fake_time) -> None:
        add_token(mocked)
        raw = LazyBody(10 * 1024 * 1024)
        mocked.post(BALANCE_URL, body=lazy_reader(raw))
        error = fetch_error(make_provider(fake_time))
        assert error.code == "UPSTREAM_MALFORMED"
        assert "limit" in str(error)
        assert raw.served < 1024 * 1024 + 256 * 1024

    def test_an_announced_10_mb_body_is_refused_before_reading(self, mocked, fake_time) -> None:
        add_token(mocked)
        raw = LazyBody(10 * 1024 * 1024)
        mocked.post(BALANCE_URL, body=lazy_reader(raw), headers={"Content-Length": str(10 * 1024 * 1024)})
        error = fetch_error(make_provider(fake_time))
        assert error.code == "UPSTREAM_MALFORMED"
        assert raw.served == 0


class TestTokenExpiry:
    def test_401_on_a_good_token_refreshes_once_and_retries_once(self, mocked, fake_time) -> None:
        add_token(mocked, TOKEN)
        add_token(mocked, TOKEN_2)
        add_balance(mocked, {"error": "token expired"}, status=401)
        add_balance(mocked)
        provider = make_provider(fake_time)
        assert provider.fetch(CUSTOMER, timeout_s=10).accounts
        auth = [c.request.headers["Authorization"] for c in calls_to(mocked, BALANCE_URL)]
        assert auth == [f"Bearer {TOKEN}", f"Bearer {TOKEN_2}"]
        assert len(calls_to(mocked, TOKEN_URL)) == 2

    def test_a_second_401_is_auth_failed(self, mocked, fake_time) -> None:
        add_token(mocked, TOKEN)
        add_token(mocked, TOKEN_2)
        add_balance(mocked, {"error": "token invalid"}, status=401)
        error = fetch_error(make_provider(fake_time))
        assert error.code == "AUTH_FAILED"
        assert len(calls_to(mocked, BALANCE_URL)) == 2
        assert len(calls_to(mocked, TOKEN_URL)) == 2

    def test_refused_credentials_on_the_token_endpoint(self, mocked, fake_time) -> None:
        mocked.post(TOKEN_URL, status=401, json={"error": "invalid_client"})
        error = fetch_error(make_provider(fake_time))
        assert error.code == "INVALID_CREDENTIALS"
        assert len(calls_to(mocked, BALANCE_URL)) == 0


def test_a_huge_error_body_is_read_only_for_its_first_words(mocked, fake_time: FakeTime) -> None:
    add_token(mocked)
    raw = LazyBody(10 * 1024 * 1024, fill=b"x")
    mocked.post(BALANCE_URL, status=400, body=lazy_reader(raw))
    error = fetch_error(make_provider(fake_time))
    assert error.code == "BALANCE_QUERY_FAILED"  # the status decides, not the size of the body
    assert raw.served <= 64 * 1024
    assert "xxx" in str(error) and len(str(error)) < 500
