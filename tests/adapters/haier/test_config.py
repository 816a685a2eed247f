"""Parsing and validating a Haier connection config; secrets never shown."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.haier.config import HaierConfig, HaierConfigError

from .conftest import (
    BASE,
    CLIENT_SECRET,
    CUSTOMER,
    CUSTOMER_PASSWORD,
    FALLBACK_PASSWORD,
    PASSWORD,
    SECRETS,
    config_body,
    make_config,
    password_config,
    public_resolver,
)

pytestmark = pytest.mark.adapters


def errors_of(**overrides: object) -> dict[str, list[str]]:
    with pytest.raises(HaierConfigError) as caught:
        HaierConfig.from_dict(config_body(**overrides), resolver=public_resolver)
    return caught.value.errors


class TestDefaults:
    def test_client_credentials_defaults(self) -> None:
        config = make_config()
        assert config.token_url == BASE + "/oauth2/auth"
        assert (config.timeouts.connect_s, config.timeouts.read_s) == (5.0, 30.0)
        assert config.rate_limit_per_s == 100.0
        assert config.token_refresh_before_s == 600.0
        assert config.auth_scheme == "Bearer"

    def test_trailing_slashes_are_dropped(self) -> None:
        config = make_config(base_url=BASE + "/", token_url=BASE + "/oauth2/token/")
        assert (config.base_url, config.token_url) == (BASE, BASE + "/oauth2/token")

    def test_explicit_values_are_kept(self) -> None:
        config = make_config(
            timeouts={"connect_s": 2, "read_s": Decimal("12.5")},
            rate_limit_per_s=20,
            token_refresh_before_s=0,
            auth_scheme="none",
        )
        assert (config.timeouts.connect_s, config.timeouts.read_s) == (2.0, 12.5)
        assert (config.rate_limit_per_s, config.token_refresh_before_s, config.auth_scheme) == (
            20.0,
            0.0,
            "none",
        )

    def test_password_auth(self) -> None:
        config = password_config()
        assert (config.auth, config.username, config.password) == ("password", "ylh-user", PASSWORD)


class TestCustomerPasswords:
    def test_listed_customer_uses_its_own_password(self) -> None:
        config = make_config(customer_password=FALLBACK_PASSWORD)
        assert config.customer_password_for(CUSTOMER) == CUSTOMER_PASSWORD

    def test_unlisted_customer_falls_back(self) -> None:
        config = make_config(customer_password=FALLBACK_PASSWORD)
        assert config.customer_password_for("8800000001") == FALLBACK_PASSWORD

    def test_unlisted_customer_without_fallback_has_none(self) -> None:
        assert make_config().customer_password_for("8800000001") is None


class TestRefusals:
    def test_every_problem_is_reported_per_field(self) -> None:
        with pytest.raises(HaierConfigError) as caught:
            HaierConfig.from_dict(
                {"auth": "kerberos", "is_active": "yes", "nope": 1}, resolver=public_resolver
            )
        errors = caught.value.errors
        assert errors["auth"] == ["must be one of client_credentials, password"]
        assert errors["base_url"] == ["is required"]
        assert errors["client_id"] == ["is required"]
        assert errors["client_secret"] == ["is required"]
        assert errors["auth_scheme"] == ["is required"]
        assert errors["is_active"] == ["must be true or false"]
        assert errors["nope"] == ["unknown field"]

    def test_body_must_be_an_object(self) -> None:
        with pytest.raises(HaierConfigError, match="body: must be a JSON object"):
            HaierConfig.from_dict(["not", "an", "object"])

    def test_password_auth_needs_username_password_and_token_url(self) -> None:
        errors = errors_of(auth="password")
        assert errors["username"] == ["is required for password auth"]
        assert errors["password"] == ["is required for password auth"]
        assert errors["token_url"][0].startswith("is required for password auth")

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("base_url", "http://169.254.169.254", "metadata"),
            ("base_url", "https://good@evil", "user name"),
            ("token_url", "http://127.0.0.1:8099/oauth2/auth", "loopback"),
            ("auth_scheme", "Basic", "must be one of Bearer, none"),
            ("client_secret", "", "non-empty"),
            ("client_id", 42, "non-empty string"),
            ("customer_password", "   ", "non-empty"),
            ("rate_limit_per_s", 0, "greater than 0"),
            ("rate_limit_per_s", 101, "at most 100"),
            ("rate_limit_per_s", True, "must be a number"),
            ("token_refresh_before_s", -1, "at least 0"),
            ("token_refresh_before_s", 3600, "at most 3599"),
            ("is_active", 1, "true or false"),
            ("customers", ["8800633175"], "must be an object"),
        ],
    )
    def test_field_errors(self, field: str, value: object, message: str) -> None:
        assert any(message in m for m in errors_of(**{field: value})[field])

    def test_timeouts_are_checked_inside(self) -> None:
        errors = errors_of(timeouts={"connect_s": 0, "read_s": "30"})
        assert errors["timeouts.connect_s"] == ["must be greater than 0 and at most 120"]
        assert errors["timeouts.read_s"] == ["must be a number"]
        assert errors_of(timeouts={"connect": 5})["timeouts"] == ['must be an object {"connect_s", "read_s"}']

    def test_customer_entries_are_checked(self) -> None:
        errors = errors_of(customers={"bad code!": "x", "8800633176": ""})
        assert errors["customers"] == ["customer code 'bad code!' must be 1-32 letters or digits"]
        assert errors["customers.8800633176"] == ["must be a non-empty password string"]

    def test_loopback_urls_are_allowed_only_when_asked(self) -> None:
        body = config_body(base_url="http://127.0.0.1:8099")
        with pytest.raises(HaierConfigError, match="loopback"):
            HaierConfig.from_dict(body)
        assert (
            HaierConfig.from_dict(body, allow_loopback=True).token_url == "http://127.0.0.1:8099/oauth2/auth"
        )

    def test_errors_never_echo_secret_values(self) -> None:
        with pytest.raises(HaierConfigError) as caught:
            HaierConfig.from_dict(config_body(client_secret=123, customers={CUSTOMER: 5}, password=PASSWORD))
        assert PASSWORD not in str(caught.value)


class TestSecretsStayHidden:
    def test_repr_and_str_show_no_secret(self) -> None:
        config = password_config(customer_password=FALLBACK_PASSWORD)
        for text in (repr(config), str(config), repr(config.timeouts)):
            assert not any(secret in text for secret in SECRETS)
        assert "secrets=***" in repr(config)

    def test_redacted_marks_every_secret_as_set_or_null(self) -> None:
        redacted = password_config(customer_password=FALLBACK_PASSWORD).redacted()
        assert redacted["client_secret"] == "set"
        assert redacted["password"] == "set"
        assert redacted["customer_password"] == "set"
        assert redacted["customers"] == {CUSTOMER: "set"}
        assert not any(secret in str(redacted) for secret in SECRETS)
        plain = make_config().redacted()
        assert (plain["password"], plain["customer_password"], plain["username"]) == (None, None, None)

    def test_secrets_lists_every_configured_secret(self) -> None:
        config = password_config(customer_password=FALLBACK_PASSWORD)
        assert set(config.secrets()) == {CLIENT_SECRET, PASSWORD, CUSTOMER_PASSWORD, FALLBACK_PASSWORD}
