"""Both token flows of the contract, the /oauth2 path fallback, every token answer shape, errors."""

from __future__ import annotations

import base64
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
import requests
import responses

from adapters.haier.deadline import Deadline
from adapters.haier.redaction import Redactor
from adapters.haier.token_client import TokenClient, alternate_token_url
from creditctl.ports.balance_provider import BalanceUnavailable

from .conftest import (
    ALT_TOKEN_URL,
    BASE,
    CLIENT_ID,
    CLIENT_SECRET,
    PASSWORD,
    PASSWORD_TOKEN_URL,
    TOKEN,
    TOKEN_URL,
    USERNAME,
    FakeTime,
    calls_to,
    make_config,
    password_config,
    sent_json,
)

pytestmark = pytest.mark.adapters


def client(fake_time: FakeTime, config=None) -> TokenClient:
    config = config or make_config()
    return TokenClient(
        config,
        session=requests.Session(),
        clock=fake_time,
        redactor=Redactor(config.secrets()),
        config_name="t",
    )


def fetch(tc: TokenClient, fake_time: FakeTime, timeout_s: float = 10):
    return tc.fetch(Deadline(timeout_s, fake_time.monotonic))


class TestClientCredentials:
    def test_posts_json_credentials_and_reads_the_token(
        self, mocked: responses.RequestsMock, fake_time
    ) -> None:
        mocked.post(TOKEN_URL, json={"access_token": TOKEN, "token_type": "bearer", "expires_in": 3600})
        token = fetch(client(fake_time), fake_time)
        assert token.value == TOKEN
        assert token.expires_at == fake_time.now() + timedelta(hours=1)
        assert token.scheme == "Bearer"
        body = sent_json(mocked.calls[0])
        assert body == {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "grant_type": "client_credentials",
        }
        assert mocked.calls[0].request.headers["Content-Type"] == "application/json"

    def test_falls_back_to_oauth2_token_on_404_and_remembers_it(self, mocked, fake_time) -> None:
        mocked.post(TOKEN_URL, status=404, json={"error": "not found"})
        mocked.post(ALT_TOKEN_URL, json={"access_token": TOKEN})
        tc = client(fake_time)
        assert fetch(tc, fake_time).value == TOKEN
        assert tc.token_url == ALT_TOKEN_URL
        fetch(tc, fake_time)
        assert len(calls_to(mocked, TOKEN_URL)) == 1  # not tried again
        assert len(calls_to(mocked, ALT_TOKEN_URL)) == 2

    def test_falls_back_the_other_way_too(self, mocked, fake_time) -> None:
        mocked.post(ALT_TOKEN_URL, status=404)
        mocked.post(TOKEN_URL, json={"access_token": TOKEN})
        tc = client(fake_time, make_config(token_url=ALT_TOKEN_URL))
        assert fetch(tc, fake_time).value == TOKEN
        assert tc.token_url == TOKEN_URL

    def test_both_paths_missing_is_auth_failed(self, mocked, fake_time) -> None:
        mocked.post(TOKEN_URL, status=404)
        mocked.post(ALT_TOKEN_URL, status=404)
        with pytest.raises(BalanceUnavailable, match=r"is not at .*/oauth2/token") as caught:
            fetch(client(fake_time), fake_time)
        assert caught.value.code == "AUTH_FAILED"
        assert len(mocked.calls) == 2

    def test_no_fallback_for_a_custom_path(self, mocked, fake_time) -> None:
        mocked.post(BASE + "/custom/token", status=404)
        with pytest.raises(BalanceUnavailable):
            fetch(client(fake_time, make_config(token_url=BASE + "/custom/token")), fake_time)
        assert len(mocked.calls) == 1

    def test_alternate_paths(self) -> None:
        assert alternate_token_url(TOKEN_URL) == ALT_TOKEN_URL
        assert alternate_token_url(ALT_TOKEN_URL) == TOKEN_URL
        assert alternate_token_url(BASE + "/oauth/token") is None


class TestPasswordGrant:
    def test_posts_the_form_with_basic_auth_and_system_name(self, mocked, fake_time) -> None:
        mocked.post(PASSWORD_TOKEN_URL, json={"access_token": TOKEN, "expires_in": 7200})
        token = fetch(client(fake_time, password_config()), fake_time)
        assert token.expires_at == fake_time.now() + timedelta(hours=2)
        request = mocked.calls[0].request
        assert request.headers["system-name"] == "ylh-open-api"
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        assert request.headers["Authorization"] == f"Basic {expected}"
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        form = parse_qs(request.body)
        assert form == {"grant_type": ["password"], "username": [USERNAME], "password": [PASSWORD]}

    def test_no_path_fallback_for_the_password_grant(self, mocked, fake_time) -> None:
        mocked.post(PASSWORD_TOKEN_URL, status=404)
        with pytest.raises(BalanceUnavailable):
            fetch(client(fake_time, password_config()), fake_time)
        assert len(mocked.calls) == 1


class TestAnswerShapes:
    @pytest.mark.parametrize(
        "answer",
        [
            {"access_token": TOKEN, "token_type": "bearer", "expires_in": 3600},
            {"data": {"access_token": TOKEN, "expires_in": 3600}},
            {"success": True, "code": "success", "data": {"token": TOKEN, "expires_in": "3600"}},
            {"token": TOKEN, "expires_in": 3600},
            {"access_token": TOKEN},
        ],
    )
    def test_token_at_top_level_under_data_or_named_token(self, mocked, fake_time, answer) -> None:
        mocked.post(TOKEN_URL, json=answer)
        token = fetch(client(fake_time), fake_time)
        assert token.value == TOKEN
        assert token.expires_at == fake_time.now() + timedelta(seconds=3600)  # default when absent

    def test_scheme_follows_the_config(self, mocked, fake_time) -> None:
        mocked.post(TOKEN_URL, json={"access_token": TOKEN})
        assert fetch(client(fake_time, make_config(auth_scheme="none")), fake_time).scheme == "none"

    @pytest.mark.parametrize(
        "body",
        [
            "not json",
            "[]",
            '{"access_token": ""}',
            '{"access_token": "has space"}',
            '{"access_token": 12345}',
            '{"expires_in": 3600}',
            '{"access_token": "x", "expires_in": -5}',
            '{"access_token": "x", "expires_in": "soon"}',
            '{"access_token": "x", "expires_in": NaN}',
        ],
    )
    def test_unreadable_answers_are_malformed(self, mocked, fake_time, body: str) -> None:
        mocked.post(TOKEN_URL, body=body, content_type="application/json")
        with pytest.raises(BalanceUnavailable) as caught:
            fetch(client(fake_time), fake_time)
        assert caught.value.code == "UPSTREAM_MALFORMED"

    def test_success_false_is_auth_failed_with_its_description(self, mocked, fake_time) -> None:
        mocked.post(TOKEN_URL, json={"success": False, "code": "E01", "description": "client disabled"})
        with pytest.raises(BalanceUnavailable, match="client disabled") as caught:
            fetch(client(fake_time), fake_time)
        assert caught.value.code == "AUTH_FAILED"


class TestErrors:
    @pytest.mark.parametrize(
        ("status", "code"),
        [
            (400, "INVALID_CREDENTIALS"),
            (401, "INVALID_CREDENTIALS"),
            (403, "AUTH_FAILED"),
            (429, "RATE_LIMITED"),
            (500, "SERVICE_UNAVAILABLE"),
            (502, "SERVICE_UNAVAILABLE"),
            (503, "SERVICE_UNAVAILABLE"),
            (302, "UPSTREAM_MALFORMED"),
            (418, "AUTH_FAILED"),
        ],
    )
    def test_status_codes(self, mocked, fake_time, status: int, code: str) -> None:
        mocked.post(TOKEN_URL, status=status, json={"error": "x"}, headers={"Location": "http://127.0.0.1/"})
        with pytest.raises(BalanceUnavailable) as caught:
            fetch(client(fake_time), fake_time)
        assert caught.value.code == code
        assert len(mocked.calls) == 1

    def test_timeout(self, mocked, fake_time) -> None:
        mocked.post(TOKEN_URL, body=requests.ReadTimeout("read timed out"))
        with pytest.raises(BalanceUnavailable) as caught:
            fetch(client(fake_time), fake_time)
        assert (caught.value.code, caught.value.sent) == ("UPSTREAM_TIMEOUT", True)

    def test_timeouts_are_cut_to_the_deadline(self, mocked, fake_time) -> None:
        mocked.post(TOKEN_URL, json={"access_token": TOKEN})
        fetch(client(fake_time), fake_time, timeout_s=1.5)
        assert mocked.calls[0].request.req_kwargs["timeout"] == (1.5, 1.5)
        assert mocked.calls[0].request.req_kwargs["stream"] is True  # read with a cap, not loaded whole
