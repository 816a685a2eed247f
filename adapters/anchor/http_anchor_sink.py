"""Anchors POSTed to an HTTPS receiver, under the outbound URL policy (as webhooks are)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

import requests

from adapters.outbound.guarded_adapter import guarded_session
from adapters.outbound.url_policy import UrlRefused, check_url
from creditctl.domain.audit_anchor import Anchor
from creditctl.ports.audit_anchor import AnchorSinkFailed

SIGNATURE_HEADER = "X-Creditctl-Anchor-Signature"


class HttpAnchorSink:
    """POSTs each anchor's line as the JSON body; any 2xx answer is success, anything else (a redirect
    included) a failure tried again at the next interval. With a secret, the body is signed:
    `X-Creditctl-Anchor-Signature: sha256=<HMAC-SHA256(secret, body) hex>`. The URL is checked against
    the outbound policy when the sink is made and before every POST (and the address at connect time)."""

    def __init__(
        self,
        url: str,
        *,
        secret: str | None = None,
        allow_loopback: bool = False,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = check_url(url, allow_loopback=allow_loopback)
        self.name = url
        self._secret = secret
        self._allow_loopback = allow_loopback
        self._timeout = (3.0, timeout_s)
        self._session = guarded_session(allow_loopback=allow_loopback)

    def write(self, anchor: Anchor) -> None:
        body = anchor.line().encode()
        headers = {"Content-Type": "application/json"}
        if self._secret:
            digest = hmac.new(self._secret.encode(), body, hashlib.sha256).hexdigest()
            headers[SIGNATURE_HEADER] = f"sha256={digest}"
        try:
            check_url(self.url, allow_loopback=self._allow_loopback)
            response = self._session.post(
                self.url,
                data=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
                stream=True,
            )
        except UrlRefused as exc:
            raise AnchorSinkFailed(f"{self.name}: url refused: {exc}") from None
        except requests.RequestException as exc:
            raise AnchorSinkFailed(f"{self.name}: {type(exc).__name__}: {exc}"[:300]) from None
        status = response.status_code
        try:  # the status is what counts: read a little of the answer, never all of it
            response.raw.read(64 * 1024, decode_content=False)
        except Exception:
            pass
        finally:
            response.close()
        if not 200 <= status < 300:
            raise AnchorSinkFailed(f"{self.name}: answered {status}")

    def last_position(self) -> int | None:
        return None

    def read_back(self) -> Sequence[Anchor] | None:
        return None
