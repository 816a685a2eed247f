"""Every answer carries what its document says it carries: each member of an answer's schema is required
(a generated client types it as always there, a fuzzer notices one missing), null only where the document
says nullable, and a nullable object is "its schema or null", never "any object"."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.openapi_tour import SCHEMAS, Walk, null_only, nullable, run_tour

pytestmark = pytest.mark.api

# Documented operations with a JSON success answer that the tour does not reach, and why.
NOT_IN_THE_TOUR: dict[tuple[str, str], str] = {}


@pytest.fixture
def spec(client: Any) -> dict[str, Any]:
    return client.get("/openapi.json").json  # type: ignore[no-any-return]


def answer_schemas(spec: dict[str, Any]) -> set[str]:
    """The component schemas a success answer uses, directly or through others."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith(SCHEMAS) and ref.removeprefix(SCHEMAS) not in found:
                found.add(ref.removeprefix(SCHEMAS))
                walk(spec["components"]["schemas"][ref.removeprefix(SCHEMAS)])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for item in spec["paths"].values():
        for method, operation in item.items():
            if method != "parameters":
                walk([r for s, r in operation["responses"].items() if s.startswith("2")])
    return found


class TestTheDocument:
    def test_every_member_of_every_answer_schema_is_required(self, spec: dict[str, Any]) -> None:
        schemas = spec["components"]["schemas"]
        names = answer_schemas(spec) | {"Problem"}
        assert len(names) > 50
        optional = {
            name: sorted(set(schemas[name].get("properties", {})) - set(schemas[name].get("required", [])))
            for name in names
        }
        assert {name: members for name, members in optional.items() if members} == {}

    def test_a_nullable_object_is_its_schema_or_null_and_nothing_else(self, spec: dict[str, Any]) -> None:
        schemas = spec["components"]["schemas"]
        for member in (("Decision", "hold"), ("Decision", "balance"), ("Account", "balance")):
            prop = schemas[member[0]]["properties"][member[1]]
            assert nullable(prop), member
            branches = [b for b in prop["anyOf"] if not null_only(b)]
            assert len(branches) == 1 and set(branches[0]) == {"$ref"}, (member, prop)
        for name, schema in schemas.items():
            for key, prop in schema.get("properties", {}).items():
                for branch in prop.get("anyOf", []):
                    # an open object beside a schema: a generated client takes it and loses the type
                    open_object = branch.get("type") == "object" and not branch.get("properties")
                    assert null_only(branch) or not open_object, (name, key, prop)


class TestTheAnswers:
    def test_each_answer_of_the_tour_carries_every_documented_member_and_no_other(
        self, client: Any, keys: dict[str, str], context: Any, clock: Any, spec: dict[str, Any]
    ) -> None:
        tour = run_tour(client, keys, context, clock)
        walk = Walk(spec)
        for answer in tour.answers:
            walk.answer(answer)
        assert not walk.faults, "\n".join(walk.faults)
        schemas = spec["components"]["schemas"]
        for name, seen in walk.members.items():
            always = set.intersection(*seen)
            required = set(schemas[name].get("required", []))
            assert always <= required, f"{name}: always in the answers, not required: {always - required}"

    def test_the_tour_reaches_every_operation_with_a_json_answer(
        self, client: Any, keys: dict[str, str], context: Any, clock: Any, spec: dict[str, Any]
    ) -> None:
        tour = run_tour(client, keys, context, clock)
        reached = {(a.method, a.path) for a in tour.answers}
        documented = {
            (method, path)
            for path, item in spec["paths"].items()
            for method, operation in item.items()
            if method != "parameters"
        }
        assert documented - reached - set(NOT_IN_THE_TOUR) == set()
