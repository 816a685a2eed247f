"""`@idempotent()`: the Idempotency-Key header on a creating call, one mechanism for every route that opts in.

A request with the header is looked up by (the caller's API key, method and path, the key):
- nothing kept: it runs. Its record (the key and a fingerprint of its query and body) is inserted by the
  first transaction the call commits, in that same transaction (creditctl.ports.idempotency), so the
  change and the record commit together or not at all; the answer (status, body, Content-Type, ETag,
  Location) is stored on the record right after. A call that fails (any answer but 2xx) forgets its
  record: it changed nothing that a retry could repeat, and a retry runs again.
- kept, same request: its answer is replayed as it was (same status and body; `Idempotent-Replayed:
  true`). A twin still running is waited for (up to WAIT_S), then its answer is replayed; past that, 409
  with Retry-After.
- kept, another body or query: 409 (`conflict.idempotency_key_reused`), as a settlement id reused with
  another amount is.
Two twins at the same moment both run; the database's primary key on the record lets one commit and fails
the other's commit (IdempotencyKeyTaken, its transaction rolled back), which then replays the first's
answer: one change, two equal answers. A twin refused by the state the first one left (a publish that
finds the draft published) replays the first's answer too.

Where the record is not in the change's transaction: a backtest is many transactions (the record goes
in with the run's first row, before the replay; a run cut short by a crash keeps a record without an
answer), and the answer always follows the change in a transaction of its own. A record without an
answer is never run again: a retry is told the call is in progress, or, after IN_FLIGHT_S, that its
answer was lost (409, read the resource); never a second change. Records are kept 24 hours
(creditctl.domain.idempotency.RETENTION), then pruned by `creditctl expire` and the worker.

Answers that show a secret once (a webhook subscription's) are sealed with the secrets' box at rest.
The decorator goes between `@requires` (the caller is known) and `@bp.arguments` (it sees the answer
as sent)."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Response, current_app, make_response, request

from adapters.web.auth import current_key
from adapters.web.context import ctx
from adapters.web.json_provider import loads_exact
from creditctl.domain.errors import InvalidRequest
from creditctl.domain.idempotency import (
    KEY_MAX_LENGTH,
    Claim,
    IdempotencyAnswerLost,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    IdempotencyKeyTaken,
    IdempotencyRecord,
    StoredAnswer,
)
from creditctl.ports.idempotency import claiming
from creditctl.ports.secret_box import SecretBox
from creditctl.services.idempotency import forget_claim, keep_answer, open_claim, record_of

F = TypeVar("F", bound=Callable[..., Any])
HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
KEPT_HEADERS = ("Content-Type", "ETag", "Location")
KEY_PATTERN = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")  # printable ASCII, not blank at the ends
WAIT_S = 10.0  # how long a twin waits for the first request's answer before 409 with Retry-After
POLL_S = 0.02
IN_FLIGHT_S = 600.0  # a record without an answer older than this: the answer was lost (a crash)
ATTEMPTS = 3  # a twin whose first request failed (and let the key go) runs itself, a few times at most


def idempotent(*, secret_box: Callable[[], SecretBox] | None = None) -> Callable[[F], F]:
    """Let the route take an Idempotency-Key header. `secret_box`: the answer shows a secret, so it is
    kept encrypted with this box."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = _key()
            if key is None:
                return view(*args, **kwargs)
            return _once(key, secret_box, lambda: view(*args, **kwargs))

        wrapper.__dict__["_idempotent"] = True  # for the OpenAPI document (adapters/web/openapi.py)
        return wrapper  # type: ignore[return-value]

    return decorate


def _key() -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if len(key) > KEY_MAX_LENGTH or not KEY_PATTERN.fullmatch(key):
        raise InvalidRequest(
            f"an Idempotency-Key is 1 to {KEY_MAX_LENGTH} printable ASCII characters "
            "(a UUID, say), not blank at either end",
            field=HEADER,
        )
    return key


def _once(key: str, secret_box: Callable[[], SecretBox] | None, run: Callable[[], Any]) -> Response:
    c = ctx()
    owner = f"api-key:{current_key().id}"
    route = f"{request.method} {request.path}"
    fingerprint = _fingerprint()
    for _ in range(ATTEMPTS):
        claim, found = open_claim(owner, route, key, fingerprint, uow=c.uow())
        if found is not None:
            replay = _replay(claim, found, secret_box)
            if replay is not None:
                return replay
            continue  # the first request failed and let the key go: this one runs
        try:
            response = _run(claim, run)
        except IdempotencyKeyTaken:
            continue  # a twin committed first, this call's change was rolled back: replay the twin
        except Exception:
            forget_claim(claim, uow=c.uow())
            replay = _twin_answer(claim, secret_box)
            if replay is None:
                raise
            return replay  # refused by what a twin with this key did: the twin's answer
        if not 200 <= response.status_code < 300:
            forget_claim(claim, uow=c.uow())
            return response
        keep_answer(claim, _stored(response, secret_box), uow=c.uow())
        return response
    raise IdempotencyKeyInFlight(key)


def _run(claim: Claim, run: Callable[[], Any]) -> Response:
    with claiming(claim):
        return make_response(run())


def _twin_answer(claim: Claim, secret_box: Callable[[], SecretBox] | None) -> Response | None:
    """After a failure: the answer of another request with this key and this body, if one was applied."""
    found = record_of(claim, uow=ctx().uow())
    if found is None or found.token == claim.token or found.fingerprint != claim.fingerprint:
        return None
    return _replay(claim, found, secret_box)


def _replay(
    claim: Claim, found: IdempotencyRecord, secret_box: Callable[[], SecretBox] | None
) -> Response | None:
    """The kept answer; waits for one still being made. None: the record went (that request failed)."""
    deadline = time.monotonic() + WAIT_S
    record: IdempotencyRecord | None = found
    while record is not None:
        if record.fingerprint != claim.fingerprint:
            raise IdempotencyKeyReused(claim.key)
        if record.answer is not None:
            return _response(record.answer, secret_box)
        if (claim.created_at - record.created_at).total_seconds() > IN_FLIGHT_S:
            raise IdempotencyAnswerLost(claim.key)
        if time.monotonic() > deadline:
            raise IdempotencyKeyInFlight(claim.key)
        time.sleep(POLL_S)
        record = record_of(claim, uow=ctx().uow())
    return None


def _fingerprint() -> str:
    """The request's query and body, canonical (key order and spacing do not matter), hashed."""
    raw = request.get_data(cache=True)
    body: Any = None
    if raw:
        try:
            body = loads_exact(raw)
        except ValueError:  # not JSON this service reads: refused by the route's parser anyway
            body = {"unparsed": hashlib.sha256(raw).hexdigest()}
    text = json.dumps(
        {"query": sorted(request.args.items(multi=True)), "body": body},
        sort_keys=True,
        default=str,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _stored(response: Response, secret_box: Callable[[], SecretBox] | None) -> StoredAnswer:
    body = response.get_data(as_text=True)
    headers = {h: response.headers[h] for h in KEPT_HEADERS if h in response.headers}
    if secret_box is None:
        return StoredAnswer(response.status_code, body, headers)
    return StoredAnswer(response.status_code, secret_box().seal(body), headers, sealed=True)


def _response(answer: StoredAnswer, secret_box: Callable[[], SecretBox] | None) -> Response:
    body = answer.body
    if answer.sealed:
        if secret_box is None:
            raise RuntimeError("a sealed idempotent answer on a route without a secret box")
        body = secret_box().open(body)
    response: Response = current_app.response_class(body, status=answer.status)
    for name, value in answer.headers.items():
        response.headers[name] = value
    response.headers[REPLAYED] = "true"
    return response
