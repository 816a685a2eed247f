"""Administrators at the same time on PostgreSQL: real threads through the Flask app, a connection each.

Two publications of one draft: one version, one event, the other refused (409 naming the version), or
the first answer replayed when it carries the same Idempotency-Key. An edit racing a publication: never
a version whose document is not its last accepted edit. Twins of a creating call with one key: one
change, equal answers. The windows are widened (a sleep between the read and the write) so that the
callers overlap for sure; the variant without the claim in the commit shows the twins test can fail.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text

import adapters.sql.unit_of_work as sql_uow_module
import adapters.web.idempotency as web_idempotency
import creditctl.services.rule_sets as rule_sets_module
from adapters.web.app import create_app
from creditctl.services.api_keys import create_api_key
from creditctl.services.context import AppContext
from rules import default_rule_set_document
from tests.adapters.concurrency import CallResult, all_at_once

pytestmark = [pytest.mark.adapters, pytest.mark.postgres]

CALLERS = 8
WIDEN_S = 0.3


@pytest.fixture
def app(pg_context: AppContext) -> Flask:
    return create_app(pg_context, {"TESTING": True})


@pytest.fixture
def admin_keys(pg_context: AppContext) -> list[str]:
    """CALLERS admin keys, one per administrator."""
    return [
        create_api_key(
            name=f"admin-{i}", role="admin", customers=None, uow=pg_context.uow(), clock=pg_context.clock
        ).secret
        for i in range(CALLERS)
    ]


def call(app: Flask, method: str, path: str, key: str, body: Any = None, **headers: str) -> Any:
    """One request on a test client of its own (each thread has one)."""
    sent = {"Authorization": f"Bearer {key}", **{k.replace("_", "-"): v for k, v in headers.items()}}
    r = app.test_client().open(path, method=method, json=body, headers=sent)
    return r.status_code, r.get_json(silent=True), r.headers


def answers(results: list[CallResult]) -> list[tuple[int, Any, Any]]:
    errors = [r.error for r in results if r.error is not None]
    assert not errors, f"{len(errors)} callers failed, first: {errors[0]!r}"
    return [r.value for r in results]


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def events(engine: Engine, type_: str) -> int:
    return int(scalar(engine, "SELECT count(*) FROM audit_events WHERE type = :t", t=type_))


def new_draft(app: Flask, key: str, name: str = "draft", document: Any = None) -> tuple[int, str]:
    status, body, headers = call(app, "POST", "/v1/rule-sets", key, {"name": name, "document": document})
    assert status == 201, body
    return body["id"], headers.get("ETag", "")


@pytest.fixture
def slow_publish(monkeypatch: pytest.MonkeyPatch) -> None:
    """A publication sleeps between reading the draft and writing the version."""
    original = rule_sets_module.compile_document

    def slow(document: Any) -> Any:
        compiled = original(document)
        time.sleep(WIDEN_S)
        return compiled

    monkeypatch.setattr(rule_sets_module, "compile_document", slow)


@pytest.fixture
def slow_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every twin looks its key up (and finds nothing) before any of them commits."""
    original = web_idempotency.open_claim

    def slow(*args: Any, **kwargs: Any) -> Any:
        found = original(*args, **kwargs)
        time.sleep(WIDEN_S)
        return found

    monkeypatch.setattr(web_idempotency, "open_claim", slow)


class TestConcurrentPublication:
    def test_admins_publishing_one_draft_at_once_make_one_version_and_one_event(
        self, app: Flask, admin_keys: list[str], postgres_engine: Engine, slow_publish: None
    ) -> None:
        rule_set_id, _ = new_draft(app, admin_keys[0])
        published_before = events(postgres_engine, "rule_set.published")

        def publish(i: int) -> Any:
            body = {"reason": f"admin {i}", "effective_at": f"2030-01-0{i + 1}T00:00:00Z"}
            return call(app, "POST", f"/v1/rule-sets/{rule_set_id}/publish", admin_keys[i], body)

        got = answers(all_at_once(CALLERS, publish))
        winners = [body for status, body, _ in got if status == 200]
        assert len(winners) == 1, [status for status, _, _ in got]
        version = winners[0]["version"]
        losers = [body for status, body, _ in got if status != 200]
        assert all(b["status"] == 409 and b["errors"]["version"] == [str(version)] for b in losers), losers
        assert events(postgres_engine, "rule_set.published") == published_before + 1
        assert scalar(postgres_engine, "SELECT count(*) FROM rule_sets WHERE version = :v", v=version) == 1
        assert scalar(postgres_engine, "SELECT max(version) FROM rule_sets") == version

    def test_one_publication_sent_at_once_with_one_key_answers_all_alike(
        self, app: Flask, admin_keys: list[str], postgres_engine: Engine, slow_publish: None
    ) -> None:
        rule_set_id, _ = new_draft(app, admin_keys[0])
        published_before = events(postgres_engine, "rule_set.published")
        path = f"/v1/rule-sets/{rule_set_id}/publish"

        def publish(i: int) -> Any:
            return call(app, "POST", path, admin_keys[0], {"reason": "go"}, Idempotency_Key="pub-twins")

        got = answers(all_at_once(CALLERS, publish))
        assert {status for status, _, _ in got} == {200}
        assert all(body == got[0][1] for _, body, _ in got)
        assert events(postgres_engine, "rule_set.published") == published_before + 1


class TestEditRacingPublication:
    @pytest.mark.parametrize("with_if_match", [False, True])
    def test_a_version_is_always_the_last_accepted_edit(
        self,
        app: Flask,
        admin_keys: list[str],
        postgres_engine: Engine,
        slow_publish: None,
        with_if_match: bool,
    ) -> None:
        """The publication reads the draft, the edit commits while it sleeps: what is published (if
        anything) is the draft as last accepted, never the edit's name on the old document, the lost
        update this once made. The publication that lost is 409 (412 with If-Match)."""

        def publication(path: str, headers: dict[str, str]) -> Any:
            return call(app, "POST", f"{path}/publish", admin_keys[1], {"reason": "go"}, **headers)

        def edition(path: str, name: str, document: Any) -> Any:
            time.sleep(WIDEN_S / 3)  # once the publication has read the draft
            return call(app, "PUT", path, admin_keys[2], {"name": name, "document": document})

        original = default_rule_set_document()  # reviews above 500000.00; the edit: above 1000.00
        assert original["params"]["single_order_review_amount"] == "500000.00"
        edited = json.loads(json.dumps(original))
        edited["params"]["single_order_review_amount"] = "1000.00"
        raced = []
        for round_ in range(3):
            rule_set_id, etag = new_draft(app, admin_keys[0], f"before {round_}", original)
            path = f"/v1/rule-sets/{rule_set_id}"

            publish = partial(publication, path, {"If_Match": etag} if with_if_match else {})
            edit = partial(edition, path, f"after {round_}", edited)
            work = (publish, edit)
            (published, _, _), (edit_status, _, _) = answers(all_at_once(2, lambda i, w=work: w[i]()))
            with postgres_engine.connect() as conn:
                query = text("SELECT name, document, version FROM rule_sets WHERE id = :id")
                row = conn.execute(query, {"id": rule_set_id}).one()
            review_at = json.loads(row.document)["params"]["single_order_review_amount"]
            accepted = (
                (f"after {round_}", "1000.00") if edit_status == 200 else (f"before {round_}", "500000.00")
            )
            assert (row.name, review_at) == accepted, (published, edit_status)
            assert (row.version is not None) == (published == 200)
            if edit_status == 200 and published != 200:
                assert published == (412 if with_if_match else 409)
                raced.append(round_)
        assert raced, "the edit never landed while the publication slept: nothing was tested"


class TestTwinsWithOneKey:
    @pytest.fixture
    def twins(self, app: Flask, admin_keys: list[str]) -> Callable[[str, Any], list[tuple[int, Any, Any]]]:
        def send(path: str, body: Any) -> list[tuple[int, Any, Any]]:
            return answers(
                all_at_once(
                    CALLERS, lambda i: call(app, "POST", path, admin_keys[0], body, Idempotency_Key="twins")
                )
            )

        return send

    def test_a_rollback_sent_at_once_is_one_version(
        self, twins: Any, postgres_engine: Engine, slow_lookup: None
    ) -> None:
        versions_before = scalar(postgres_engine, "SELECT count(*) FROM rule_sets WHERE version IS NOT NULL")
        got = twins("/v1/rule-sets/1/rollback", {"reason": "back"})
        assert {status for status, _, _ in got} == {201} and all(b == got[0][1] for _, b, _ in got)
        after = scalar(postgres_engine, "SELECT count(*) FROM rule_sets WHERE version IS NOT NULL")
        assert after == versions_before + 1
        assert sum(1 for _, _, h in got if "Idempotent-Replayed" not in h) == 1

    def test_a_webhook_subscription_sent_at_once_is_one_subscription(
        self, twins: Any, postgres_engine: Engine, slow_lookup: None
    ) -> None:
        hook = {"url": "https://hooks.example.com/creditctl", "events": ["balance.low"]}
        got = twins("/v1/webhooks", hook)
        assert {status for status, _, _ in got} == {201} and all(b == got[0][1] for _, b, _ in got)
        assert scalar(postgres_engine, "SELECT count(*) FROM webhook_subscriptions") == 1

    def test_a_credit_limit_request_sent_at_once_is_one_request(
        self, twins: Any, postgres_engine: Engine, slow_lookup: None
    ) -> None:
        body = {"amount": "300.00", "until": "2026-12-31T00:00:00Z", "reason": "year end"}
        got = twins("/v1/accounts/8800000001/GB20/credit-limit-requests", body)
        assert {status for status, _, _ in got} == {201} and all(b == got[0][1] for _, b, _ in got)
        assert scalar(postgres_engine, "SELECT count(*) FROM credit_limit_requests") == 1

    def test_without_the_claim_in_the_commit_the_twins_apply_twice(
        self, twins: Any, postgres_engine: Engine, slow_lookup: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Proves the tests above can fail: with the record not written in the change's transaction, twins
        that looked the key up before either committed each make their own version."""
        monkeypatch.setattr(sql_uow_module, "write_pending_claim", lambda records: None)
        versions_before = scalar(postgres_engine, "SELECT count(*) FROM rule_sets WHERE version IS NOT NULL")
        twins("/v1/rule-sets/1/rollback", {"reason": "back"})
        after = scalar(postgres_engine, "SELECT count(*) FROM rule_sets WHERE version IS NOT NULL")
        assert after > versions_before + 1
