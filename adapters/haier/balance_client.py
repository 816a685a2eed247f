"""One payer-balance query: POST the customer's code and password with the token, read the answer.

HTTP statuses and envelope refusals become UpstreamError with the documented meaning of each.
"""

from __future__ import annotations

import requests

from adapters.haier.config import HaierConfig
from adapters.haier.deadline import Deadline
from adapters.haier.envelope import MalformedAnswer, QueryRefused, load_json, parse_balances
from adapters.haier.errors import UpstreamError
from adapters.haier.observe import CallSink, upstream_call
from adapters.haier.redaction import Redactor
from adapters.haier.transport import Answer, post
from creditctl.domain.balance import PayerBalance
from creditctl.ports.token_store import Token

BALANCE_PATH = (
    "/yilihuo/jsh-service-finance-mall/api/page/account/account-balance-manager"
    "/get-payer-account-balance-by-customer-code"
)
MAX_BALANCE_BODY = 1024 * 1024

_STATUS_CODES = {
    400: ("BALANCE_QUERY_FAILED", "refused the query as bad parameters"),
    401: ("TOKEN_EXPIRED", "refused the token as invalid or expired"),
    403: ("AUTH_FAILED", "forbids this interface (permission or IP allow-list)"),
    404: ("BALANCE_QUERY_FAILED", "does not know the balance interface"),
    429: ("RATE_LIMITED", "is throttling us"),
}


class BalanceClient:
    """Queries the payer balances of one customer with a given token."""

    def __init__(
        self,
        config: HaierConfig,
        *,
        session: requests.Session,
        redactor: Redactor,
        config_name: str,
        on_call: CallSink | None = None,
    ) -> None:
        self._on_call = on_call
        self._config = config
        self._session = session
        self._redactor = redactor
        self._name = config_name
        self.url = config.base_url + BALANCE_PATH

    def query(
        self,
        customer_code: str,
        customer_password: str,
        token: Token,
        deadline: Deadline,
        *,
        attempt: int = 1,
    ) -> tuple[PayerBalance, ...]:
        """Every payer balance of `customer_code`, exact; raise UpstreamError otherwise."""
        with upstream_call(
            "balance", config=self._name, attempt=attempt, customer_code=customer_code, on_call=self._on_call
        ) as record:
            answer = post(
                self._session,
                self.url,
                deadline=deadline,
                timeouts=self._config.timeouts,
                max_body=MAX_BALANCE_BODY,
                record=record,
                json={"customerCode": customer_code, "customerPassword": customer_password},
                headers={"Authorization": token.authorization()},
            )
            if not 200 <= answer.status < 300:
                raise self._status_error(answer)
            try:
                return parse_balances(load_json(answer.body))
            except MalformedAnswer as exc:
                raise UpstreamError(
                    "UPSTREAM_MALFORMED", f"balance answer unreadable: {exc}", status=answer.status
                ) from None
            except QueryRefused as exc:
                description = self._redactor.scrub(exc.description)[:300]
                code = self._redactor.scrub(exc.code or "no code")
                message = f"the platform refused the balance query ({code}): {description}"
                raise UpstreamError("BALANCE_QUERY_FAILED", message, status=answer.status) from None

    def _status_error(self, answer: Answer) -> UpstreamError:
        status = answer.status
        if status in _STATUS_CODES:
            code, why = _STATUS_CODES[status]
        elif status >= 500:
            code, why = "SERVICE_UNAVAILABLE", "is unavailable"
        elif 300 <= status < 400:
            code, why = "UPSTREAM_MALFORMED", "answered with a redirect, which is never followed"
        else:
            code, why = "BALANCE_QUERY_FAILED", "refused the query"
        detail = self._redactor.scrub(answer.text(8192))[:300]
        retry_after = answer.retry_after_s() if status in (429, 503) else None
        return UpstreamError(
            code,
            f"the balance endpoint {why} (HTTP {status}): {detail}",
            status=status,
            retry_after_s=retry_after,
        )
