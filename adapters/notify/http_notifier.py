"""Webhook POSTs with requests: timeouts, no redirect followed, the address checked at connect time."""

from __future__ import annotations

from collections.abc import Mapping

import requests

from adapters.outbound.guarded_adapter import guarded_session
from adapters.outbound.url_policy import UrlRefused, check_url
from creditctl.ports.notifier import DeliveryFailed


class HttpNotifier:
    """Notifier over HTTP. The URL policy is checked again before every POST (a stored URL whose host now
    resolves elsewhere is refused) and at connect time (DNS rebinding); a redirect is a failed attempt."""

    def __init__(
        self, *, allow_loopback: bool = False, connect_timeout_s: float = 3.0, read_timeout_s: float = 10.0
    ) -> None:
        self._allow_loopback = allow_loopback
        self._timeout = (connect_timeout_s, read_timeout_s)
        self._session = guarded_session(allow_loopback=allow_loopback)

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            check_url(url, allow_loopback=self._allow_loopback)
            response = self._session.post(
                url,
                data=body,
                headers=dict(headers),
                timeout=self._timeout,
                allow_redirects=False,
                stream=True,
            )
        except UrlRefused as exc:
            raise DeliveryFailed(f"url refused: {exc}") from None
        except requests.RequestException as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:300]) from None
        try:  # the status is what counts: read a little of the answer, never all of it
            response.raw.read(64 * 1024, decode_content=False)
        except Exception as exc:
            raise DeliveryFailed(f"answer {response.status_code} broke off: {exc}"[:300]) from None
        finally:
            response.close()
        return response.status_code
