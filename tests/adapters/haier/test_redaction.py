"""No secret reaches a log record, an exception or a repr, even when the upstream echoes them (item 14)."""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import quote_plus

import pytest
import requests
import responses

from adapters.haier.redaction import Redactor, scrub
from creditctl.ports.balance_provider import BalanceUnavailable

from .conftest import (
    BALANCE_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    CUSTOMER,
    CUSTOMER_PASSWORD,
    PASSWORD,
    PASSWORD_TOKEN_URL,
    SECRETS,
    TOKEN,
    TOKEN_2,
    TOKEN_URL,
    FakeTime,
    add_token,
    make_config,
    make_provider,
    password_config,
)

pytestmark = pytest.mark.adapters

BASIC = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
FORBIDDEN = (*SECRETS, BASIC, quote_plus(CUSTOMER_PASSWORD))


class TestScrub:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("Authorization: Bearer abc.def-123", "Authorization: *** ***"),
            ("bearer abc", "bearer ***"),
            ("Basic dXNlcjpwYXNz", "Basic ***"),
            ('{"access_token": "xyz", "expires_in": 3600}', '{"access_token": ***, "expires_in": 3600}'),
            ('{"token":"t"}', '{"token":***}'),
            ("password=foo&user=bar", "password=***&user=bar"),
            ("customerPassword: hunter2, code: 1", "customerPassword: ***, code: 1"),
            ('client_secret="s3"', "client_secret=***"),
            ("jwt eyJhbGciOi.eyJzdWIiOi.sig_nature", "jwt ***"),
            ("the token is invalid", "the token is invalid"),
        ],
    )
    def test_patterns(self, text: str, expected: str) -> None:
        assert scrub(text) == expected

    def test_known_values_anywhere(self) -> None:
        assert scrub(f"echo {CUSTOMER_PASSWORD}!", [CUSTOMER_PASSWORD]) == "echo ***!"

    def test_redactor_masks_encodings_and_run_time_tokens(self) -> None:
        redactor = Redactor([CUSTOMER_PASSWORD, None, ""])
        redactor.add_basic(CLIENT_ID, CLIENT_SECRET)
        redactor.add(TOKEN)
        text = f"a={quote_plus(CUSTOMER_PASSWORD)} b={BASIC} c={TOKEN} d={CLIENT_ID}"
        assert redactor.scrub(text) == f"a=*** b=*** c=*** d={CLIENT_ID}"

    def test_redactor_forgets_old_tokens_but_not_configured_secrets(self) -> None:
        redactor = Redactor([CUSTOMER_PASSWORD], keep_tokens=2)
        for value in ("tok-one-1", "tok-two-2", "tok-three-3"):
            redactor.add(value)
        assert redactor.scrub("tok-one-1 tok-three-3 " + CUSTOMER_PASSWORD) == "tok-one-1 *** ***"


def echo(*extra: str, issued: str = TOKEN) -> str:
    """An upstream error body echoing what we sent: the issued token (bare and as Bearer), secrets."""
    return json.dumps(
        {
            "success": False,
            "code": "ECHO",
            "description": f"bad request from Bearer {TOKEN_2} token {issued} with customerPassword="
            f"{CUSTOMER_PASSWORD} raw {CUSTOMER_PASSWORD} client_secret {CLIENT_SECRET} basic {BASIC} "
            + " ".join(extra),
        }
    )


def record_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    texts = []
    for record in caplog.records:
        texts.append(record.getMessage())
        texts.extend(str(v) for v in vars(record).values())
        if record.exc_info:
            texts.append(logging.Formatter().formatException(record.exc_info))
    return texts


def error_texts(error: BaseException) -> list[str]:
    texts = [str(error), repr(error)]
    if error.__cause__ is not None:
        texts += [str(error.__cause__), repr(error.__cause__)]
    return texts


def assert_clean(texts: list[str]) -> None:
    for text in texts:
        for secret in FORBIDDEN:
            assert secret not in text, f"secret {secret[:4]}... leaked into: {text}"
        assert "Bearer tok" not in text


SCENARIOS = {
    "balance 400 echoing": [(400, echo())],
    "balance 401 twice echoing": [(401, echo()), (401, echo())],
    "balance 403 echoing": [(403, echo())],
    "balance 500 echoing": [(500, echo())] * 4,
    "balance 429 echoing": [(429, echo())] * 4,
    "success false echoing": [(200, echo())],
    "malformed echoing": [(200, f"<html>token={TOKEN} {CUSTOMER_PASSWORD}</html>")],
    "redirect echoing": [(302, echo())],
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_balance_paths_leak_nothing(
    scenario: str, mocked: responses.RequestsMock, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    add_token(mocked, TOKEN)
    add_token(mocked, TOKEN_2)
    for status, body in SCENARIOS[scenario]:
        headers = {"Location": f"https://evil.example/?token={TOKEN}"} if status == 302 else {}
        mocked.post(BALANCE_URL, status=status, body=body, headers=headers)
    provider = make_provider(fake_time, breaker_threshold=100)
    with pytest.raises(BalanceUnavailable) as caught:
        provider.fetch(CUSTOMER, timeout_s=30)
    assert caplog.records, "every upstream call leaves a record"
    assert_clean(record_texts(caplog) + error_texts(caught.value) + [repr(provider), repr(provider._config)])


@pytest.mark.parametrize("status", [400, 401, 403, 500])
@pytest.mark.parametrize("flow", ["client_credentials", "password"])
def test_token_paths_leak_nothing(
    flow: str,
    status: int,
    mocked: responses.RequestsMock,
    fake_time: FakeTime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    config = password_config() if flow == "password" else make_config()
    url = PASSWORD_TOKEN_URL if flow == "password" else TOKEN_URL
    # no token was issued on these paths, so only the Bearer form of one can be echoed
    sent_password = f"password={PASSWORD} raw {PASSWORD}" if flow == "password" else ""
    mocked.post(url, status=status, body=echo(sent_password, issued="(none)"))
    provider = make_provider(fake_time, config, breaker_threshold=100)
    with pytest.raises(BalanceUnavailable) as caught:
        provider.fetch(CUSTOMER, timeout_s=30)
    assert_clean(record_texts(caplog) + error_texts(caught.value) + [repr(config)])


def test_a_token_refused_with_success_false_leaks_nothing(mocked, fake_time, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    mocked.post(TOKEN_URL, json={"success": False, "description": f"secret {CLIENT_SECRET} is wrong"})
    with pytest.raises(BalanceUnavailable) as caught:
        make_provider(fake_time).fetch(CUSTOMER, timeout_s=30)
    assert_clean(record_texts(caplog) + error_texts(caught.value))


def test_network_errors_leak_nothing(mocked, fake_time, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    add_token(mocked)
    mocked.post(BALANCE_URL, body=requests.ConnectionError("connection reset"))
    with pytest.raises(BalanceUnavailable) as caught:
        make_provider(fake_time).fetch(CUSTOMER, timeout_s=30)
    assert_clean(record_texts(caplog) + error_texts(caught.value))


def test_a_successful_fetch_logs_no_secret(mocked, fake_time, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    add_token(mocked)
    mocked.post(BALANCE_URL, json={"success": True, "data": []})
    report = make_provider(fake_time).fetch(CUSTOMER, timeout_s=30)
    assert_clean([*record_texts(caplog), repr(report)])
