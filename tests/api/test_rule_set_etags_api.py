"""Rule set drafts carry a revision: GET and PUT answer its ETag; PUT and publish take If-Match (optional);
a stale one is 412 problem+json naming the current ETag and changes nothing. On SQLite (the races
themselves: tests/adapters/test_admin_concurrency_postgres.py)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from tests.api.conftest import Api, assert_problem

pytestmark = pytest.mark.api


class Drafts:
    def __init__(self, api: Api) -> None:
        self.api = api

    def _headers(self, if_match: str | None) -> dict[str, str]:
        return self.api.auth("admin") | ({"If-Match": if_match} if if_match is not None else {})

    def create(self, name: str = "draft") -> Any:
        r = self.api.client.post("/v1/rule-sets", json={"name": name}, headers=self.api.auth("admin"))
        assert r.status_code == 201, r.json
        return r

    def get(self, rule_set_id: int) -> Any:
        return self.api.client.get(f"/v1/rule-sets/{rule_set_id}", headers=self.api.auth("auditor"))

    def put(self, rule_set_id: int, name: str, document: Any, if_match: str | None = None) -> Any:
        return self.api.client.put(
            f"/v1/rule-sets/{rule_set_id}",
            json={"name": name, "document": document},
            headers=self._headers(if_match),
        )

    def publish(self, rule_set_id: int, if_match: str | None = None) -> Any:
        return self.api.client.post(
            f"/v1/rule-sets/{rule_set_id}/publish", json={"reason": "go"}, headers=self._headers(if_match)
        )


@pytest.fixture
def drafts(api: Api) -> Drafts:
    return Drafts(api)


def stored(engine: Engine, rule_set_id: int) -> tuple[Any, ...]:
    with engine.connect() as conn:
        query = text("SELECT name, document, version, revision FROM rule_sets WHERE id = :id")
        row = conn.execute(query, {"id": rule_set_id}).one()
    return tuple(row)


class TestETags:
    def test_get_put_and_create_answer_the_revisions_etag(self, drafts: Drafts) -> None:
        created = drafts.create()
        rule_set_id = created.json["id"]
        assert created.headers["ETag"] == f'"{rule_set_id}.1"'
        assert drafts.get(rule_set_id).headers["ETag"] == f'"{rule_set_id}.1"'
        edited = drafts.put(rule_set_id, "renamed", created.json["document"])
        assert edited.status_code == 200 and edited.headers["ETag"] == f'"{rule_set_id}.2"'
        assert drafts.get(rule_set_id).headers["ETag"] == f'"{rule_set_id}.2"'

    def test_an_edit_with_the_current_etag_is_applied(self, drafts: Drafts) -> None:
        created = drafts.create()
        rule_set_id, etag = created.json["id"], created.headers["ETag"]
        r = drafts.put(rule_set_id, "mine", created.json["document"], if_match=etag)
        assert r.status_code == 200 and r.json["name"] == "mine"

    def test_a_stale_if_match_is_412_naming_the_current_etag_and_changes_nothing(
        self, drafts: Drafts, sqlite_engine: Engine
    ) -> None:
        created = drafts.create()
        rule_set_id, first = created.json["id"], created.headers["ETag"]
        assert drafts.put(rule_set_id, "theirs", {"rules": []}, if_match=first).status_code == 200
        before = stored(sqlite_engine, rule_set_id)
        r = drafts.put(rule_set_id, "mine", created.json["document"], if_match=first)
        problem = assert_problem(r, 412, "If-Match")
        current = f'"{rule_set_id}.2"'
        assert r.headers["ETag"] == current and current in problem["errors"]["If-Match"][0]
        assert problem["type"].endswith("/precondition/rule_set_changed")
        assert stored(sqlite_engine, rule_set_id) == before

    # '""' is an empty entity tag, which werkzeug reads as None (it was a 500)
    @pytest.mark.parametrize(
        "tag", ['"999.1"', 'W/"{id}.1"', '"{id}.x"', "garbage", '"{id}.01x"', '""', 'W/"{id}.1", ""']
    )
    def test_an_if_match_naming_nothing_of_this_rule_set_is_412(self, drafts: Drafts, tag: str) -> None:
        created = drafts.create()
        rule_set_id = created.json["id"]
        r = drafts.put(rule_set_id, "x", {}, if_match=tag.format(id=rule_set_id))
        assert_problem(r, 412, "If-Match")

    def test_a_star_or_a_list_holding_the_current_etag_matches(self, drafts: Drafts) -> None:
        created = drafts.create()
        rule_set_id = created.json["id"]
        assert drafts.put(rule_set_id, "a", {}, if_match="*").status_code == 200
        listed = f'"{rule_set_id}.1", "{rule_set_id}.2"'
        assert drafts.put(rule_set_id, "b", {}, if_match=listed).status_code == 200

    def test_a_publish_with_a_stale_if_match_is_412_and_publishes_nothing(
        self, drafts: Drafts, sqlite_engine: Engine
    ) -> None:
        created = drafts.create()
        rule_set_id, seen = created.json["id"], created.headers["ETag"]
        assert drafts.put(rule_set_id, "edited", created.json["document"]).status_code == 200
        problem = assert_problem(drafts.publish(rule_set_id, if_match=seen), 412, "If-Match")
        assert f'"{rule_set_id}.2"' in problem["errors"]["If-Match"][0]
        assert stored(sqlite_engine, rule_set_id)[2] is None  # still a draft
        published = drafts.publish(rule_set_id, if_match=f'"{rule_set_id}.2"')
        assert published.status_code == 200 and published.json["name"] == "edited"
        assert published.headers["ETag"] == f'"{rule_set_id}.3"'

    def test_without_if_match_edits_and_publications_work_as_before(self, drafts: Drafts) -> None:
        created = drafts.create()
        rule_set_id = created.json["id"]
        assert drafts.put(rule_set_id, "edited", created.json["document"]).status_code == 200
        assert drafts.publish(rule_set_id).status_code == 200

    def test_a_published_version_is_409_naming_its_version_whatever_if_match_says(
        self, drafts: Drafts
    ) -> None:
        created = drafts.create()
        rule_set_id = created.json["id"]
        version = drafts.publish(rule_set_id).json["version"]
        for if_match in (None, created.headers["ETag"], f'"{rule_set_id}.2"'):
            edit, publish = drafts.put(rule_set_id, "x", {}, if_match), drafts.publish(rule_set_id, if_match)
            for r in (edit, publish):
                problem = assert_problem(r, 409, "version")
                assert problem["errors"]["version"] == [str(version)]

    def test_the_openapi_document_tells_etag_if_match_and_412(self, client: FlaskClient) -> None:
        paths = client.get("/openapi.json").json["paths"]
        one = paths["/v1/rule-sets/{rule_set_id}"]
        assert "ETag" in one["get"]["responses"]["200"]["headers"]
        for operation in (one["put"], paths["/v1/rule-sets/{rule_set_id}/publish"]["post"]):
            assert "If-Match" in {p["name"] for p in operation["parameters"] if p["in"] == "header"}
            assert "412" in operation["responses"] and "ETag" in operation["responses"]["200"]["headers"]
        assert "If-Match" not in {p["name"] for p in one["get"].get("parameters", [])}
