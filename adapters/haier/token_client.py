"""Fetch an access token by either documented flow: client credentials (JSON) or password grant (form).

The document names /oauth2/auth while its example posts to /oauth2/token, so on a 404 the other
path is tried once and the one that worked is remembered for the life of this client.
"""

from __future__ import annotations

import base64
import re
import threading
from datetime import timedelta
from decimal import Decimal
from typing import Any

import requests

from adapters.haier.config import HaierConfig
from adapters.haier.deadline import Deadline
from adapters.haier.envelope import MalformedAnswer, load_json
from adapters.haier.errors import UpstreamError
from adapters.haier.observe import CallSink, upstream_call
from adapters.haier.redaction import Redactor
from adapters.haier.transport import Answer, post
from creditctl.ports.clock import Clock
from creditctl.ports.token_store import Token

MAX_TOKEN_BODY = 64 * 1024
DEFAULT_EXPIRES_IN_S = 3600
_PATHS = ("/oauth2/auth", "/oauth2/token")
_TOKEN_TEXT = re.compile(r"^[\x21-\x7e]{1,4096}$")  # printable, no spaces: safe in a header


def alternate_token_url(url: str) -> str | None:
    """The other documented client-credentials path for `url` (/oauth2/auth <-> /oauth2/token), if any."""
    for this, other in (_PATHS, _PATHS[::-1]):
        if url.endswith(this):
            return url[: -len(this)] + other
    return None


class TokenClient:
    """Asks the platform for a token; errors are UpstreamError with stable codes."""

    def __init__(
        self,
        config: HaierConfig,
        *,
        session: requests.Session,
        clock: Clock,
        redactor: Redactor,
        config_name: str,
        on_call: CallSink | None = None,
    ) -> None:
        self._on_call = on_call
        self._config = config
        self._session = session
        self._clock = clock
        self._redactor = redactor
        self._name = config_name
        self._lock = threading.Lock()
        self._url = config.token_url

    @property
    def token_url(self) -> str:
        """The token URL in use: the configured one, or the alternate that answered after a 404."""
        with self._lock:
            return self._url

    def fetch(self, deadline: Deadline, *, attempt: int = 1) -> Token:
        """A fresh token, with `expires_at` counted from when the request was sent."""
        if self._config.auth == "password":
            return self._fetch_password(deadline, attempt)
        url = self.token_url
        try:
            return self._fetch_client_credentials(url, deadline, attempt)
        except UpstreamError as exc:
            other = alternate_token_url(url)
            if exc.status != 404 or other is None:
                raise
        token = self._fetch_client_credentials(other, deadline, attempt)
        with self._lock:
            self._url = other
        return token

    def _fetch_client_credentials(self, url: str, deadline: Deadline, attempt: int) -> Token:
        body = {
            "client_id": self._config.client_id,
            "client_secret": self._config.client_secret,
            "grant_type": "client_credentials",
        }
        return self._call(url, deadline, attempt, json=body)

    def _fetch_password(self, deadline: Deadline, attempt: int) -> Token:
        credential = f"{self._config.client_id}:{self._config.client_secret}".encode()
        headers = {
            "system-name": "ylh-open-api",
            "Authorization": "Basic " + base64.b64encode(credential).decode("ascii"),
        }
        form = {
            "grant_type": "password",
            "username": self._config.username,
            "password": self._config.password,
        }
        return self._call(self._config.token_url, deadline, attempt, data=form, headers=headers)

    def _call(self, url: str, deadline: Deadline, attempt: int, **kwargs: Any) -> Token:
        with upstream_call("token", config=self._name, attempt=attempt, on_call=self._on_call) as record:
            sent_at = self._clock.now()
            answer = post(
                self._session,
                url,
                deadline=deadline,
                timeouts=self._config.timeouts,
                max_body=MAX_TOKEN_BODY,
                record=record,
                **kwargs,
            )
            if not 200 <= answer.status < 300:
                raise self._status_error(answer, url)
            try:
                value, expires_in = parse_token_answer(load_json(answer.body))
            except MalformedAnswer as exc:
                raise UpstreamError(
                    "UPSTREAM_MALFORMED", f"token answer unreadable: {exc}", status=200
                ) from None
            except _TokenRefused as exc:
                reason = self._redactor.scrub(exc)[:300]
                raise UpstreamError(
                    "AUTH_FAILED", f"the token endpoint refused: {reason}", status=200
                ) from None
            expires_at = sent_at + timedelta(seconds=expires_in)
            return Token(value=value, expires_at=expires_at, scheme=self._config.auth_scheme)

    def _status_error(self, answer: Answer, url: str) -> UpstreamError:
        status = answer.status
        detail = self._redactor.scrub(answer.text(8192))[:300]
        if status in (400, 401):
            code, why = "INVALID_CREDENTIALS", "refused the client credentials"
        elif status == 403:
            code, why = "AUTH_FAILED", "forbids this client (interface permission or IP allow-list)"
        elif status == 404:
            code, why = "AUTH_FAILED", f"is not at {url}"
        elif status == 429:
            return UpstreamError(
                "RATE_LIMITED",
                "token endpoint throttled us",
                status=429,
                retry_after_s=answer.retry_after_s(),
            )
        elif status >= 500:
            code, why = "SERVICE_UNAVAILABLE", "is unavailable"
        elif 300 <= status < 400:
            code, why = "UPSTREAM_MALFORMED", "answered with a redirect, which is never followed"
        else:
            code, why = "AUTH_FAILED", "refused the request"
        return UpstreamError(code, f"token endpoint {why} (HTTP {status}): {detail}", status=status)


class _TokenRefused(Exception):
    """A 2xx token answer that says success: false."""


def parse_token_answer(doc: Any) -> tuple[str, int]:
    """(token value, lifetime in seconds) from a token answer at top level or under "data"."""
    if not isinstance(doc, dict):
        raise MalformedAnswer("not an object")
    inner = doc.get("data") if isinstance(doc.get("data"), dict) else doc
    value = inner.get("access_token") or inner.get("token")
    if value is None and doc.get("success") is False:
        raise _TokenRefused(str(doc.get("description") or doc.get("code") or "no description")[:8192])
    if not isinstance(value, str) or not _TOKEN_TEXT.match(value):
        raise MalformedAnswer("no access_token or token of printable text")
    return value, _expires_in(inner.get("expires_in"))


def _expires_in(raw: Any) -> int:
    if raw is None:
        return DEFAULT_EXPIRES_IN_S
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int | Decimal) or not 0 < raw <= 30 * 86400:
        raise MalformedAnswer("expires_in is not a positive number of seconds")
    return int(raw)
