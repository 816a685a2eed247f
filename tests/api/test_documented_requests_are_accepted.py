"""A client that follows the document gets no 422 (and no 5xx). For every operation of the served
/openapi.json, schemathesis generates only requests the document allows (positive data); each is sent with
a key of a role the operation takes and with ids that exist in its path; the test fails naming the
operation, its parameters and body for every answer that is a 422 or a 5xx. Other refusals are the state's
answer, not the request's, and may come: 404 (a generated customer code nobody has), 409 (a hold already
ended), 403 (authority beyond the role: an owner approving their own request), 412 (a generated If-Match).

What OpenAPI 3.0 cannot state (one member against another, against the clock, against the world), the
document says in words, and a hook below applies it to what is generated, naming the documented rule it
applies (HOOKS). Nothing else of a generated request is changed but its key, the ids in its path and, now
and then, an account that exists in place of a generated one; no operation is left out, and each must be
accepted (2xx) at least once, so that the run is known to have got past the key and the path.

Bounded in examples (not time) and derandomized: a run sends the same requests on every machine.
"""

from __future__ import annotations

import re
import socket
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from adapters.cli.backtest_jobs import run_queued
from creditctl.services.api_keys import create_api_key
from rules import FACTS, KNOWN_PARAMS, FactType, parse_rule_set
from tests.api.conftest import CUSTOMER_A, CUSTOMER_B, Api, order

pytestmark = pytest.mark.api

EXAMPLES_PER_OPERATION = 40  # about 2,400 requests: some 40 s on one core
KEY_HEADERS = {"authorization", "x-api-key"}
ROLES_FIRST = ("admin", "orders", "finance", "auditor")  # the role of the key each operation is called with
ACCOUNT = f"/v1/accounts/{CUSTOMER_A}/GB20"
PERIOD = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}
HAIER = {
    "base_url": "https://openplat-test.haier.net",
    "auth": "client_credentials",
    "client_id": "client-4711",
    "client_secret": "cs-secret",
    "auth_scheme": "Bearer",
    "is_active": False,
}
OWN_PARAM_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_.]*)\}")

Hook = Callable[[Any, datetime], None]


# --- hooks: each applies a rule the document states in words, which OpenAPI 3.0 cannot state ---------------


def period_of_a_report(case: Any, now: datetime) -> None:
    """GET /v1/reports/{decisions,upstream}[.csv], `to`: "after `from`, at most 366 days after it" (also
    its default, the end of today: after a `from` alone only if that is in the last 366 days)."""
    query = case.query or {}
    if not _is_day_or_moment(query.get("from")):
        return  # none: `from` defaults to 7 days before `to`, a period whatever `to` is
    start, end = query["from"], query.get("to")
    if not (_is_day_or_moment(end) and _same_form(start, end) and 1 <= _days(start, end) <= 365):
        query["to"] = _a_day_after(start)


def period_of_a_backtest(case: Any, now: datetime) -> None:
    """POST /v1/backtests and /v1/rule-sets/{id}/backtest, `to`: "...and before (UTC); after `from`"."""
    start, end = case.body.get("from"), case.body.get("to")
    if _is_moment(start) and _is_moment(end) and _moment(end) <= _moment(start):
        case.body["to"] = _a_day_after(case.body["from"])


def limit_request_ends_ahead(case: Any, now: datetime) -> None:
    """POST .../credit-limit-requests, `until`: "in the future (the database's clock), at most 366 days
    ahead" (the test's clock is the database's)."""
    until = case.body.get("until")
    if _is_moment(until) and not now < _moment(until) <= now + timedelta(days=366):
        case.body["until"] = (now + timedelta(days=1)).isoformat()


def payment_records_agree(case: Any, now: datetime) -> None:
    """POST .../payments: paid_amount "at most amount"; paid_date "given exactly when paid_amount is above
    0.00", "to today (UTC, the database's clock)"; invoice_id "unique in a batch"."""
    seen: set[str] = set()
    today = now.date().isoformat()
    for i, record in enumerate(case.body["payments"]):
        paid = Decimal(record.get("paid_amount") or "0")
        if paid > Decimal(record["amount"]):
            record["paid_amount"], paid = record["amount"], Decimal(record["amount"])
        if paid > 0 and (record.get("paid_date") is None or record["paid_date"] > today):
            record["paid_date"] = today
        if paid == 0 and record.get("paid_date") is not None:
            record["paid_date"] = None
        if record["invoice_id"] in seen:
            record["invoice_id"] = f"{record['invoice_id'][:58]}#{i}"
        seen.add(record["invoice_id"])


def a_part_has_its_id(case: Any, now: datetime) -> None:
    """POST /v1/decisions/{order_id}/settle: an amount "Needs settlement_id or an Idempotency-Key header",
    and settlement_id and the header, "if both are sent they must be equal"."""
    body, key = case.body, (case.headers or {}).get("Idempotency-Key")
    if not isinstance(body, dict):
        return  # no body: all that is left, which needs no id
    if key is not None and body.get("settlement_id") not in (None, key):
        body["settlement_id"] = key
    if body.get("amount") is not None and body.get("settlement_id") is None and key is None:
        body["settlement_id"] = "DN-1"


def a_real_or_a_described_account(case: Any, now: datetime) -> None:
    """POST /v1/rule-sets/{id}/simulate: customer_code "or `account` is required"."""
    if case.body.get("account") is None and not case.body.get("customer_code"):
        case.body["customer_code"] = CUSTOMER_A


def metadata_names_are_short(case: Any, now: datetime) -> None:
    """POST /v1/decisions, metadata: "each name at most 64 characters" (OpenAPI 3.0 has no propertyNames)."""
    metadata = case.body.get("metadata")
    if isinstance(metadata, dict):
        short = {name: v for name, v in metadata.items() if len(name) <= 64}
        long = [v for name, v in metadata.items() if len(name) > 64]
        case.body["metadata"] = {**short, **{f"long #{i}": v for i, v in enumerate(long)}}


def haier_config_holds_together(case: Any, now: datetime) -> None:
    """PUT /v1/admin/haier/configs/{name}: username, password and token_url "required when auth is
    password"; customers are named by customer codes (1 to 32 letters, digits, '-' or '_': no propertyNames in
    OpenAPI 3.0); a secret sent as "set" keeps one stored for the same destination: there is none for a
    generated one."""
    body = case.body
    if body["auth"] == "password":
        for name, value in (("username", "u"), ("password", "p"), ("token_url", HAIER["base_url"] + "/t")):
            body[name] = body[name] if body.get(name) is not None else value
    for name in ("client_secret", "password", "customer_password"):
        if body.get(name) == "set":
            body[name] = "sent"
    if isinstance(body.get("customers"), dict):
        passwords = body["customers"].values()
        body["customers"] = {f"C{i}": "sent" if pw == "set" else pw for i, pw in enumerate(passwords)}


def rule_document_is_valid(case: Any, now: datetime) -> None:
    """A rule document (POST /v1/rule-sets, PUT /v1/rule-sets/{id}, POST /v1/backtests): a condition has a
    "value a literal of the fact's type" (when, auto_unfreeze: described, as a condition is a small typed
    language); rule ids are "Unique in the document"; a message placeholder "names a fact or a param the
    document declares"; a param of the document's own has "a name matching ^[a-z][a-z0-9_]{0,63}$ that is no
    fact's" (no propertyNames in OpenAPI 3.0). The conditions put here compare each fact with a literal of
    its type, alone or under all, any and not."""
    document = case.body.get("document", case.body.get("rule_set"))
    if not (isinstance(document, dict) and isinstance(document.get("rules"), list)):
        return  # POST /v1/rule-sets without one: a copy of the active set's (or not a document at all)
    params = document.get("params") or {}
    document["params"] = {
        name if name in KNOWN_PARAMS or _own_param_name(name) else f"own_{i}": value
        for i, (name, value) in enumerate(params.items())
    }
    if document.get("auto_unfreeze") is not None:
        document["auto_unfreeze"] = _condition(len(params))
    for i, rule in enumerate(r for r in document["rules"] if isinstance(r, dict) and "id" in r):
        rule["id"] = f"{rule['id'][:56]}_{i}"
        rule["when"] = _condition(i)
        if "message" in rule:
            rule["message"] = PLACEHOLDER.sub(_a_fact_or_declared(document["params"]), rule["message"])
    parse_rule_set(document)  # the hook's own check: what it leaves is valid


HOOKS: dict[str, list[Hook]] = {
    "GET /v1/reports/decisions": [period_of_a_report],
    "GET /v1/reports/decisions.csv": [period_of_a_report],
    "GET /v1/reports/upstream": [period_of_a_report],
    "GET /v1/reports/upstream.csv": [period_of_a_report],
    "POST /v1/backtests": [period_of_a_backtest, rule_document_is_valid],
    "POST /v1/rule-sets/{rule_set_id}/backtest": [period_of_a_backtest],
    "POST /v1/accounts/{customer_code}/{sale_group_code}/credit-limit-requests": [limit_request_ends_ahead],
    "POST /v1/accounts/{customer_code}/{sale_group_code}/payments": [payment_records_agree],
    "POST /v1/decisions/{order_id}/settle": [a_part_has_its_id],
    "POST /v1/rule-sets/{rule_set_id}/simulate": [a_real_or_a_described_account],
    "POST /v1/decisions": [metadata_names_are_short],
    "PUT /v1/admin/haier/configs/{name}": [haier_config_holds_together],
    "POST /v1/rule-sets": [rule_document_is_valid],
    "PUT /v1/rule-sets/{rule_set_id}": [rule_document_is_valid],
}


def _is_moment(value: Any) -> bool:
    try:
        return _moment(value).tzinfo is not None
    except (TypeError, ValueError, AttributeError):
        return False


def _is_day_or_moment(value: Any) -> bool:
    if isinstance(value, str) and len(value) == 10:
        try:
            return bool(date.fromisoformat(value))
        except ValueError:
            return False
    return _is_moment(value)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _same_form(a: str, b: str) -> bool:
    return (len(a) == 10) == (len(b) == 10)


def _days(start: str, end: str) -> int:
    if len(start) == 10:
        return (date.fromisoformat(end) - date.fromisoformat(start)).days
    return (_moment(end) - _moment(start)) // timedelta(days=1)


def _a_day_after(text: str) -> str:
    if len(text) == 10:
        return (date.fromisoformat(text) + timedelta(days=1)).isoformat()
    return (_moment(text) + timedelta(days=1)).isoformat()


def _own_param_name(name: str) -> bool:
    return OWN_PARAM_NAME.fullmatch(name) is not None and name not in FACTS


_LITERALS = {
    FactType.MONEY: ("gt", "1000.00"),
    FactType.INTEGER: ("gte", 3),
    FactType.RATIO: ("lt", "0.5"),
    FactType.STRING: ("eq", "GB20"),
}
_WRAPPED: list[Callable[[dict[str, Any]], dict[str, Any]]] = [
    lambda c: c,
    lambda c: {"all": [c, {"fact": "order.amount", "op": "present"}]},
    lambda c: {"any": [c]},
    lambda c: {"not": c},
]


def _condition(i: int) -> dict[str, Any]:
    """A valid condition: the i-th fact of the catalogue compared with a literal of its type."""
    spec = list(FACTS.values())[i % len(FACTS)]
    if spec.values is not None:
        comparison: dict[str, Any] = {"fact": spec.name, "op": "in", "value": list(spec.values[:2])}
    else:
        op, value = _LITERALS[spec.type]
        comparison = {"fact": spec.name, "op": op, "value": value}
    return _WRAPPED[(i // len(FACTS)) % len(_WRAPPED)](comparison)


def _a_fact_or_declared(params: dict[str, Any]) -> Callable[[re.Match[str]], str]:
    def keep_or_replace(placeholder: re.Match[str]) -> str:
        named = placeholder.group(1)
        return placeholder.group(0) if named in FACTS or named in params else "{order.amount}"

    return keep_or_replace


# --- the world the requests meet --------------------------------------------------------------------------


@pytest.fixture
def no_name_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    """Which addresses a host name has is the world's, not the document's: this test resolves none (and
    touches no network); the server takes an https host name that does not resolve (and checks it again
    before every call it makes)."""

    def unresolved(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "not resolved in this test")

    monkeypatch.setattr(socket, "getaddrinfo", unresolved)


@dataclass
class Known:
    """The ids a path parameter takes, by name; an operation that ends what it names has ids of its own,
    so that the operations after it still find theirs."""

    ids: dict[str, list[Any]]
    own: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def path(self, label: str, names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
        ids = {**self.ids, **self.own.get(label, {})}
        return st.fixed_dictionaries({name: st.sampled_from(ids[name]) for name in names})


def seed(api: Api, context: Any, now: datetime) -> Known:
    """Orders approved and deferred, temporary limit requests, drafts, a finished backtest, webhook
    subscriptions and a Haier config, for the generated requests to name."""
    admin = api.auth("admin")

    def call(method: str, url: str, status: int, body: Any = None, **kw: Any) -> Any:
        r = api.client.open(url, method=method, json=body, headers=kw.pop("headers", admin), **kw)
        assert r.status_code == status, (method, url, r.status_code, r.get_data(as_text=True))
        return r.json

    def decided(amount: str, **kw: Any) -> str:
        body = order(amount=amount, **kw)
        call("POST", "/v1/decisions", 201, body, headers=api.auth("orders"))
        return str(body["order_id"])

    def asked(account: str) -> str:
        body = {"amount": "5000.00", "until": (now + timedelta(days=30)).isoformat(), "reason": "stock"}
        return str(call("POST", f"{account}/credit-limit-requests", 201, body)["id"])

    # orders above 1,000.00 wait in the review queue: deferred orders to release, reject and recheck
    call("PUT", f"{ACCOUNT}/params", 200, {"params": {"single_order_review_amount": "1000.00"}})
    approved = [decided(a) for a in ("100.00", "200.00", "300.00", "400.00")]
    approved.append(decided("900.00", customer=CUSTOMER_B, group="GA10"))
    deferred = {
        use: [decided("5000.00"), decided("6000.00")] for use in ("any", "release", "reject", "recheck")
    }
    active = call("GET", "/v1/rule-sets/1", 200)["document"]
    drafts = [
        call("POST", "/v1/rule-sets", 201, {"name": f"draft {i}", "document": active})["id"] for i in range(3)
    ]
    run = call("POST", f"/v1/rule-sets/{drafts[0]}/backtest", 202, PERIOD)
    run_queued(context)
    subscriptions = [
        call(
            "POST", "/v1/webhooks", 201, {"url": f"https://hooks{i}.example.com/x", "events": ["balance.low"]}
        )
        for i in range(2)
    ]
    call("PUT", "/v1/admin/haier/configs/main", 200, HAIER)
    return Known(
        ids={
            "order_id": approved + deferred["any"],
            "customer_code": [CUSTOMER_A, CUSTOMER_B],
            "sale_group_code": ["GB20", "GA10"],
            "request_id": [asked(ACCOUNT)],
            "rule_set_id": [*drafts, 1],
            "run_id": [run["id"]],
            "subscription_id": [subscriptions[0]["id"]],
            "name": ["main"],
        },
        own={
            "POST /v1/reviews/{order_id}/release": {"order_id": deferred["release"]},
            "POST /v1/reviews/{order_id}/reject": {"order_id": deferred["reject"]},
            "POST /v1/reviews/{order_id}/recheck": {"order_id": deferred["recheck"]},
            # an approval supersedes the account's other requests: the one to reject is on another account
            "POST /v1/credit-limit-requests/{request_id}/reject": {
                "request_id": [asked(f"/v1/accounts/{CUSTOMER_A}/GA10")]
            },
            "DELETE /v1/webhooks/{subscription_id}": {"subscription_id": [subscriptions[1]["id"]]},
        },
    )


# An account that exists, now and then, in a body or query that names one (a decision's, a simulation's,
# a filter's, the seed system's balance query), so that a request gets past "unknown customer".
ACCOUNTS = st.sampled_from(
    [{}, {"customer_code": CUSTOMER_A, "sale_group_code": "GB20"}, {"customer_code": CUSTOMER_B}]
)


def _put(members: dict[str, Any], case: Any) -> None:
    for container in (case.query, case.body):
        if isinstance(container, dict):
            for name in container.keys() & members.keys():
                container[name] = members[name]


# Operations that change how every later order is decided (a freeze blocks, overdue payment records freeze,
# parameters and rule sets move outcomes, a batch recheck decides the queue) run after the others, so that
# the review queue still holds deferred orders when its operations run.
LAST = (
    "POST /v1/accounts/{customer_code}/{sale_group_code}/payments",
    "POST /v1/accounts/{customer_code}/{sale_group_code}/freeze",
    "POST /v1/accounts/{customer_code}/{sale_group_code}/unfreeze",
    "PUT /v1/accounts/{customer_code}/{sale_group_code}/params",
    "PUT /v1/accounts/{customer_code}/{sale_group_code}/rule-set",
    "PUT /v1/customers/{customer_code}/rule-set",
    "POST /v1/rule-sets/{rule_set_id}/publish",
    "POST /v1/rule-sets/{rule_set_id}/rollback",
    "POST /v1/reviews/recheck",
)


def operations(app: Any) -> list[Any]:
    """Every operation of the served document, in its order but for LAST."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    # literals mined from the app's source would change the generated data with every change of the code
    schema.config.analysis.constants.enabled = False
    found = [result.ok() for result in schema.get_all_operations()]
    return sorted(found, key=lambda operation: operation.label in LAST)


@dataclass
class Run:
    """Sends every operation's generated requests; keeps what each answered, and every 422 and 5xx."""

    known: Known
    secrets: dict[str, str]
    now: datetime
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    refused: list[str] = field(default_factory=list)

    def operation(self, operation: Any) -> None:
        label = operation.label
        role = next(r for r in ROLES_FIRST if r in operation.definition.raw["x-roles"])
        key = {"Authorization": f"Bearer {self.secrets[role]}"}

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: every refusal is kept, as it came
            suppress_health_check=list(HealthCheck),
        )
        @given(
            case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            path=self.known.path(label, [p.name for p in operation.path_parameters]),
            account=ACCOUNTS,
        )
        def send(case: Any, path: dict[str, Any], account: dict[str, str]) -> None:
            case.path_parameters = {**(case.path_parameters or {}), **path}
            _put(account, case)
            for name in [h for h in case.headers or {} if h.lower() in KEY_HEADERS]:
                del case.headers[name]  # generated from the security schemes: the one key is sent
            for hook in HOOKS.get(label, []):
                hook(case, self.now)
            response = case.call(headers=key)
            self.statuses[label][response.status_code] += 1
            if response.status_code == 422 or response.status_code >= 500:
                self.refused.append(_shown(case, response))

        send()


def _shown(case: Any, response: Any) -> str:
    try:
        answer = response.json()
    except ValueError:
        answer = response.text[:300]
    errors = answer.get("errors", answer) if isinstance(answer, dict) else answer
    return (
        f"{case.operation.label} answered {response.status_code} {errors}\n"
        f"    path={case.path_parameters} query={case.query} headers={case.headers} body={case.body!r:.600}"
    )


@pytest.mark.timeout(120)  # a safety net: the run takes well under a minute
def test_a_request_the_document_allows_is_never_refused_as_invalid(
    api: Api, app: Any, context: Any, clock: Any, keys: dict[str, str], no_name_resolves: None
) -> None:
    now = clock.now()
    known = seed(api, context, now)
    # The admin key: another owner than the seed's (four eyes on the temporary limits the seed asked for),
    # with authority for any amount (releases from the review queue, approvals).
    approver = create_api_key(
        name="approver",
        role="admin",
        customers=None,
        uow=context.uow(),
        clock=context.clock,
        approval_limit="1000000000000.00",
        owner="approver",
    )
    run = Run(known, {**keys, "admin": approver.secret}, now)
    every = operations(app)
    for operation in every:
        run.operation(operation)
    assert not run.refused, "\n".join(run.refused)
    answered = {label: dict(counts) for label, counts in run.statuses.items()}
    assert len(answered) == len(every) > 50, answered
    never = [label for label, counts in answered.items() if not any(200 <= s < 300 for s in counts)]
    assert not never, {label: answered[label] for label in never}
