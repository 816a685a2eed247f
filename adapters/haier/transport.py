"""One HTTP POST to the upstream: no redirects, timeouts cut to the deadline, the body read with a cap.

Reading streamed, chunk by chunk, lets a 10 MB (or endless, or slow-drip) answer be refused after
the cap or the deadline instead of being loaded whole. Transport failures become UpstreamError
here, so the clients above only interpret answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import ReadTimeoutError

from adapters.haier.config import Timeouts
from adapters.haier.deadline import Deadline
from adapters.haier.errors import UpstreamError, local_error
from adapters.haier.observe import CallRecord
from adapters.outbound.guarded_adapter import AddressRefused

CHUNK = 64 * 1024
ERROR_BODY_PREFIX = 8 * 1024
_REQUEST_ID_HEADERS = ("X-Request-Id", "X-Trace-Id", "traceId", "X-B3-TraceId", "Request-Id")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer with its body read in full (within the cap)."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def retry_after_s(self) -> float | None:
        """Retry-After in seconds, capped at an hour; the HTTP-date form is ignored (backoff applies)."""
        raw = self.headers.get("Retry-After", "").strip()
        return float(min(int(raw), 3600)) if raw.isdigit() else None  # not money: Retry-After seconds

    def text(self, limit: int) -> str:
        """The start of the body as text, for error messages: scrub it first, then shorten it."""
        return self.body[:limit].decode("utf-8", "replace")


def post(
    session: requests.Session,
    url: str,
    *,
    deadline: Deadline,
    timeouts: Timeouts,
    max_body: int,
    record: CallRecord,
    **kwargs: Any,
) -> Answer:
    """POST and read the answer, or raise UpstreamError (code UPSTREAM_TIMEOUT, SERVICE_UNAVAILABLE...)."""
    if deadline.expired():
        raise local_error("UPSTREAM_TIMEOUT", "no time left before the call could be sent")
    host = urlsplit(url).hostname
    try:
        response = session.post(
            url,
            timeout=deadline.http_timeout(timeouts.connect_s, timeouts.read_s),
            allow_redirects=False,
            stream=True,
            **kwargs,
        )
    except requests.RequestException as exc:
        raise _transport_error(exc, host) from exc
    with closing(response):
        record.status = response.status_code
        record.upstream_request_id = _request_id(response.headers)
        if 200 <= response.status_code < 300:
            body = _read_capped(response, max_body, deadline, host)
        else:  # an error answer is kept only for its first words: its status already says what happened
            body = _read_prefix(response, ERROR_BODY_PREFIX, deadline, host)
    return Answer(response.status_code, response.headers, body)


def _read_capped(response: requests.Response, max_body: int, deadline: Deadline, host: str | None) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_body:
        raise UpstreamError(
            "UPSTREAM_MALFORMED",
            f"{host} announced a {declared}-byte answer, over the {max_body}-byte limit; not read",
            status=response.status_code,
        )
    parts: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(chunk_size=CHUNK):
            size += len(chunk)
            if size > max_body:
                raise UpstreamError(
                    "UPSTREAM_MALFORMED",
                    f"{host} sent an answer over the {max_body}-byte limit; reading stopped",
                    status=response.status_code,
                )
            parts.append(chunk)
            if deadline.expired():
                raise UpstreamError(
                    "UPSTREAM_TIMEOUT", f"{host} was still sending its answer at the deadline"
                )
    except requests.RequestException as exc:
        raise _transport_error(exc, host, mid_body=True) from exc
    return b"".join(parts)


def _read_prefix(response: requests.Response, limit: int, deadline: Deadline, host: str | None) -> bytes:
    parts: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(chunk_size=limit):
            parts.append(chunk)
            size += len(chunk)
            if size >= limit or deadline.expired():
                break
    except requests.RequestException as exc:
        raise _transport_error(exc, host, mid_body=True) from exc
    return b"".join(parts)[:limit]


def _transport_error(
    exc: requests.RequestException, host: str | None, *, mid_body: bool = False
) -> UpstreamError:
    """Map a requests failure onto a stable code; `sent` is False only when nothing left."""
    if isinstance(exc, requests.ConnectTimeout):
        return UpstreamError("UPSTREAM_TIMEOUT", f"could not connect to {host} in time", sent=False)
    if isinstance(exc, requests.ReadTimeout) or _caused_by(exc, ReadTimeoutError):
        return UpstreamError("UPSTREAM_TIMEOUT", f"{host} did not answer in time; outcome unknown")
    refused = _caused_by(exc, AddressRefused)
    if refused is not None:
        return UpstreamError(
            "SERVICE_UNAVAILABLE", f"refused to connect: {refused}", sent=False, retryable=False
        )
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return UpstreamError("UPSTREAM_MALFORMED", f"{host} sent an answer that cannot be decoded")
    if isinstance(exc, requests.exceptions.SSLError):
        return UpstreamError("SERVICE_UNAVAILABLE", f"TLS with {host} failed", retryable=False)
    if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
        where = "in the middle of its answer" if mid_body else ""
        return UpstreamError("SERVICE_UNAVAILABLE", f"the connection to {host} broke {where}".strip())
    return UpstreamError(
        "SERVICE_UNAVAILABLE", f"calling {host} failed ({type(exc).__name__})", retryable=False
    )


def _caused_by(exc: BaseException, kind: type[BaseException]) -> Any:
    """The first exception of `kind` in exc's args, reasons and causes (requests nests urllib3's)."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, kind):
            return item
        todo.extend([*item.args, getattr(item, "reason", None), item.__cause__, item.__context__])
    return None


def _request_id(headers: Mapping[str, str]) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value and _SAFE_ID.match(value):
            return value
    return None
