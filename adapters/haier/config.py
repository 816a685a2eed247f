"""One Haier connection config, parsed from the JSON an administrator sends and refused field by field.

Secrets (client secret, password, customer passwords) never appear in repr or in `redacted()`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from adapters.outbound.url_policy import Resolver, UrlRefused, check_url, system_resolver

AUTH_FLOWS = ("client_credentials", "password")
AUTH_SCHEMES = ("Bearer", "none")
DEFAULT_TOKEN_PATH = "/oauth2/auth"
MAX_RATE_PER_S = 100  # the platform's documented limit per interface
MAX_TEXT = 512  # an id, a secret, a user name
MAX_CONNECT_S = 120
MAX_READ_S = 300
_CUSTOMER_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_FIELDS = frozenset(
    {
        "base_url", "token_url", "auth", "client_id", "client_secret", "username", "password",
        "auth_scheme", "customer_password", "customers", "timeouts", "rate_limit_per_s",
        "token_refresh_before_s", "is_active",
    }
)  # fmt: skip


class HaierConfigError(ValueError):
    """A config refused; `errors` maps each field to what is wrong with it (never its value)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        detail = "; ".join(f"{name}: {', '.join(msgs)}" for name, msgs in sorted(errors.items()))
        super().__init__(f"invalid Haier config: {detail}")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-attempt HTTP timeouts in seconds; the caller's deadline shrinks them further."""

    connect_s: float = 5.0
    read_s: float = 30.0


@dataclass(frozen=True)
class HaierConfig:
    """A validated connection to the JSH open platform for one or more customers."""

    base_url: str
    token_url: str
    auth: str
    client_id: str
    client_secret: str = field(repr=False)
    auth_scheme: str = "Bearer"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    customer_password: str | None = field(default=None, repr=False)
    customers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    timeouts: Timeouts = field(default_factory=Timeouts)
    rate_limit_per_s: float = 100.0
    token_refresh_before_s: float = 600.0
    is_active: bool = True

    @classmethod
    def from_dict(
        cls,
        body: Any,
        *,
        allow_loopback: bool = False,
        resolver: Resolver | None = system_resolver,
    ) -> HaierConfig:
        """Parse and validate the config JSON; raise HaierConfigError with every problem at once."""
        return _Parser(body, allow_loopback=allow_loopback, resolver=resolver).parse()

    def customer_password_for(self, customer_code: str) -> str | None:
        """The password to send for `customer_code`: its own, else the shared fallback, else None."""
        return self.customers.get(customer_code, self.customer_password)

    def secrets(self) -> tuple[str, ...]:
        """Every configured secret value, for the redactor."""
        values = (self.client_secret, self.password, self.customer_password, *self.customers.values())
        return tuple(v for v in values if v)

    def redacted(self) -> dict[str, Any]:
        """The config as an API may show it: every secret is "set", or None when absent."""
        return {
            "base_url": self.base_url,
            "token_url": self.token_url,
            "auth": self.auth,
            "client_id": self.client_id,
            "client_secret": "set",
            "username": self.username,
            "password": _set(self.password),
            "auth_scheme": self.auth_scheme,
            "customer_password": _set(self.customer_password),
            "customers": {code: "set" for code in self.customers},
            "timeouts": {"connect_s": self.timeouts.connect_s, "read_s": self.timeouts.read_s},
            "rate_limit_per_s": self.rate_limit_per_s,
            "token_refresh_before_s": self.token_refresh_before_s,
            "is_active": self.is_active,
        }

    def __repr__(self) -> str:
        return (
            f"HaierConfig(base_url={self.base_url!r}, auth={self.auth!r}, client_id={self.client_id!r}, "
            f"customers={sorted(self.customers)!r}, is_active={self.is_active!r}, secrets=***)"
        )


def _set(value: str | None) -> str | None:
    return "set" if value else None


class _Parser:
    """Collects every field error instead of stopping at the first."""

    def __init__(self, body: Any, *, allow_loopback: bool, resolver: Resolver | None) -> None:
        self.body = body
        self.allow_loopback = allow_loopback
        self.resolver = resolver
        self.errors: dict[str, list[str]] = {}

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def parse(self) -> HaierConfig:
        if not isinstance(self.body, Mapping):
            raise HaierConfigError({"body": ["must be a JSON object"]})
        for unknown in sorted(set(self.body) - _FIELDS):
            self.fail(str(unknown)[:64], "unknown field")
        auth = self.choice("auth", AUTH_FLOWS, required=True)
        base_url = self.url("base_url", required=True)
        token_url = self.url(
            "token_url",
            required=auth == "password",
            why=" for password auth (the auth server's .../oauth/token)",
        )
        if token_url is None and base_url is not None and auth == "client_credentials":
            token_url = base_url + DEFAULT_TOKEN_PATH
        values: dict[str, Any] = {
            "client_id": self.text("client_id", required=True),
            "client_secret": self.text("client_secret", required=True),
            "username": self.text("username", required=auth == "password", why=" for password auth"),
            "password": self.text("password", required=auth == "password", why=" for password auth"),
            "auth_scheme": self.choice("auth_scheme", AUTH_SCHEMES, required=True),
            "customer_password": self.text("customer_password"),
            "customers": self.customers(),
            "timeouts": self.timeouts(),
            "rate_limit_per_s": self.number("rate_limit_per_s", 100.0, low=0, high=MAX_RATE_PER_S),
            "token_refresh_before_s": self.number(
                "token_refresh_before_s", 600.0, low=0, high=3599, closed=True
            ),
            "is_active": self.flag("is_active"),
        }
        if self.errors:
            raise HaierConfigError(self.errors)
        return HaierConfig(base_url=base_url, token_url=token_url, auth=auth, **values)  # type: ignore[arg-type]

    def present(self, name: str, required: bool, why: str = "") -> bool:
        if self.body.get(name) is None:
            if required:
                self.fail(name, f"is required{why}")
            return False
        return True

    def text(self, name: str, *, required: bool = False, why: str = "") -> str | None:
        if not self.present(name, required, why):
            return None
        value = self.body[name]
        if not isinstance(value, str) or not value.strip():
            self.fail(name, "must be a non-empty string")
            return None
        if len(value) > MAX_TEXT:
            self.fail(name, f"must be at most {MAX_TEXT} characters")
            return None
        return value

    def choice(self, name: str, allowed: tuple[str, ...], *, required: bool) -> str | None:
        if not self.present(name, required):
            return None
        if self.body[name] not in allowed:
            self.fail(name, f"must be one of {', '.join(allowed)}")
            return None
        return str(self.body[name])

    def url(self, name: str, *, required: bool, why: str = "") -> str | None:
        if not self.present(name, required, why):
            return None
        try:
            url = check_url(self.body[name], allow_loopback=self.allow_loopback, resolver=self.resolver)
        except UrlRefused as exc:
            self.fail(name, str(exc))
            return None
        return url.rstrip("/")

    def number(
        self, name: str, default: float, *, low: float, high: float, closed: bool = False, within: str = ""
    ) -> float:
        """A number in (low, high], or [low, high] when `closed`; `within` names the enclosing object."""
        where = self.body.get(within) if within else self.body
        label = f"{within}.{name}" if within else name
        value = where.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            self.fail(label, "must be a number")
            return default
        if not (low <= value if closed else low < value) or not value <= high:
            bound = "at least" if closed else "greater than"
            self.fail(label, f"must be {bound} {low} and at most {high}")
            return default
        return float(value)  # not money: a timeout or rate

    def flag(self, name: str) -> bool:
        if not self.present(name, True):
            return False
        if not isinstance(self.body[name], bool):
            self.fail(name, "must be true or false")
            return False
        return bool(self.body[name])

    def customers(self) -> Mapping[str, str]:
        raw = self.body.get("customers") or {}
        if not isinstance(raw, Mapping):
            self.fail("customers", 'must be an object {"<customerCode>": "<customerPassword>"}')
            return MappingProxyType({})
        out: dict[str, str] = {}
        for code, password in raw.items():
            if not isinstance(code, str) or not _CUSTOMER_CODE.match(code):
                self.fail("customers", f"customer code {str(code)[:40]!r} must be 1-32 letters or digits")
            elif not isinstance(password, str) or not password:
                self.fail(f"customers.{code}", "must be a non-empty password string")
            else:
                out[code] = password
        return MappingProxyType(out)

    def timeouts(self) -> Timeouts:
        raw = self.body.get("timeouts")
        if raw is None:
            return Timeouts()
        if not isinstance(raw, Mapping) or set(raw) - {"connect_s", "read_s"}:
            self.fail("timeouts", 'must be an object {"connect_s", "read_s"}')
            return Timeouts()
        connect = self.number("connect_s", 5.0, low=0, high=MAX_CONNECT_S, within="timeouts")
        read = self.number("read_s", 30.0, low=0, high=MAX_READ_S, within="timeouts")
        return Timeouts(connect_s=connect, read_s=read)
