"""The served OpenAPI document is a contract the app keeps: schemathesis generates requests from
/openapi.json (valid ones and invalid ones) for every operation, sends them through the WSGI app with a
real key, and checks each answer: never a 5xx, a documented status, a documented content type, a body
that matches the documented schema.

Bounded in examples (not time) so that a run is the same on a slow machine; seeded for the same reason
(CREDITCTL_TEST_SEED changes the seed, to explore further or to replay a CI run).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test
from schemathesis import GenerationMode
from schemathesis.checks import load_all_checks

from tests.api.conftest import CUSTOMER_A, CUSTOMER_B, order
from tests.random_refs import random_order_id
from tests.sqlite_snapshot import Snapshot

pytestmark = pytest.mark.api

SEED = int(os.environ.get("CREDITCTL_TEST_SEED", "20261127"))
KEY_HEADERS = {"authorization", "x-api-key"}
# Per generation mode and operation the key may call: about 1,000 requests with an admin key, 400 with an
# orders key (59 operations today; each run well under a minute alone).
EXAMPLES_PER_OPERATION = 10


def status_code_documented_explicitly(ctx: Any, response: Any, case: Any) -> bool | None:
    """status_code_conformance accepts any status when "default" is documented; every 4xx the app gives
    must have its own entry (with its reason), or a client cannot know to expect it."""
    documented = case.operation.responses.status_codes
    if str(response.status_code) not in documented and response.status_code != 405:
        raise AssertionError(
            f"{case.operation.label} answered {response.status_code}, documented {documented}"
        )
    return None


def contract_checks() -> list[Any]:
    load_all_checks()
    names = (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    )
    return [*(getattr(schemathesis.checks, name) for name in names), status_code_documented_explicitly]


def with_known_values(known: dict[str, list[str]]) -> Any:
    """A strategy of functions that put things the database holds into a generated case, by parameter
    or member name, each name or not (random codes alone would mostly meet 404s)."""

    def put(chosen: dict[str, str | None]) -> Any:
        values = {name: value for name, value in chosen.items() if value is not None}

        def apply(case: Any) -> Any:
            for container in (case.path_parameters, case.query, case.body):
                if isinstance(container, dict):
                    for name in container.keys() & values.keys():
                        container[name] = values[name]
            return case

        return apply

    each = {name: st.none() | st.sampled_from(options) for name, options in known.items()}
    return st.fixed_dictionaries(each).map(put)


def fuzz(app: Any, headers: dict[str, str], known: dict[str, list[str]], role: str) -> Counter[int]:
    """Run every operation of the served document with the key in `headers`; count the answers by status.
    An operation the key's role may not call gets one example per mode: every one of them is a 403."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    checks = contract_checks()
    statuses: Counter[int] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations
    for operation in operations:
        allowed = role in operation.definition.raw.get("x-roles", [role])
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @seed(SEED)
            @settings(
                max_examples=EXAMPLES_PER_OPERATION if allowed else 1,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                print_blob=True,
            )
            @given(case=operation.as_strategy(generation_mode=mode), known_values=with_known_values(known))
            def call(case: Any, known_values: Any) -> None:
                case = known_values(case)
                for name in [h for h in case.headers or {} if h.lower() in KEY_HEADERS]:
                    del case.headers[name]  # generated from the security schemes: send the one key only
                response = case.call(headers=headers)
                statuses[response.status_code] += 1
                case.validate_response(response, checks=checks, headers=headers)

            call()
    return statuses


@pytest.mark.timeout(120)  # a safety net: each run takes ~10-20 s
@pytest.mark.parametrize(
    ("role", "header"),
    [("admin", "Authorization"), ("orders", "X-API-Key")],  # both documented ways of sending a key
)
def test_every_operation_keeps_the_documented_contract(api, app, keys, role, header):
    orders = [order(amount=amount) for amount in ("100.00", "5000.00", "200000.00")]
    for body in orders:
        assert api.decide(body).status_code == 201
    known = {
        "customer_code": [CUSTOMER_A, CUSTOMER_B],
        "sale_group_code": ["GB20", "GA10"],
        "order_id": [body["order_id"] for body in orders],
        "name": ["main"],
    }
    secret = keys[role] if header == "X-API-Key" else f"Bearer {keys[role]}"
    statuses = fuzz(app, {header: secret}, known, role)
    assert statuses.total() > 300
    assert statuses[401] == 0, "the key was not taken: the run proved nothing past authentication"
    assert sum(n for status, n in statuses.items() if 200 <= status < 300) > 20, statuses


def test_the_links_from_a_decision_are_documented_and_followed(app, keys, sqlite_engine):
    """POST /v1/decisions links its answer to reading, settling and releasing that order; schemathesis'
    stateful phase decides orders and follows the links, each answer keeping the documented contract."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app).include(path_regex=r"^/v1/decisions")
    # literals schemathesis mines from the app's source change with every change of the code, and with them
    # what hypothesis generates between runs ("inconsistent data generation"): generate from the document only
    schema.config.analysis.constants.enabled = False
    checks = contract_checks()
    headers = {"Authorization": f"Bearer {keys['orders']}"}
    followed: Counter[str] = Counter()
    start = Snapshot(sqlite_engine)

    class Orders(schema.as_state_machine()):  # type: ignore[misc]
        """Each run decides fresh orders on an account that exists, and the database is put back at the
        end (a settled part or an Idempotency-Key's record would outlive a release): the same steps meet
        the same state in every run (hypothesis requires it)."""

        def teardown(self) -> None:
            start.restore()
            super().teardown()

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": headers}

        def before_call(self, case: Any) -> None:
            for name in [h for h in case.headers or {} if h.lower() in KEY_HEADERS]:
                del case.headers[name]
            if case.path == "/v1/decisions" and isinstance(case.body, dict):
                order_id = random_order_id("linked")
                case.body.update(order_id=order_id, customer_code=CUSTOMER_A, sale_group_code="GB20")

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            followed[f"{case.method} {case.path} {response.status_code}"] += 1

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=checks, headers=headers)

    links = {
        name: link["operationRef"]
        for name, link in schema.raw_schema["paths"]["/v1/decisions"]["post"]["responses"]["201"][
            "links"
        ].items()
    }
    assert set(links) == {"read", "settle", "release"}
    run_state_machine_as_test(
        Orders,
        settings=settings(
            max_examples=40,
            stateful_step_count=4,
            phases=[Phase.generate],  # no shrinking: orders stay in the database between runs
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
    assert followed["POST /v1/decisions 201"] > 0, followed
    linked = ("GET /v1/decisions/{order_id} 200", "POST /v1/decisions/{order_id}/settle 200")
    assert any(k.startswith(linked) for k in followed), followed
