"""/v1/webhooks: admin keys not limited to customers subscribe URLs under the Haier URL rules; the secret
is shown once and sealed at rest; rotation answers a new secret and keeps the old one signing a while."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from creditctl.services.api_keys import create_api_key
from creditctl.services.context import AppContext
from tests.api.conftest import CUSTOMER_A, assert_problem

pytestmark = pytest.mark.api

GOOD = {"url": "https://hooks.example.com/creditctl", "events": ["balance.low", "upstream.down"]}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def create(client: FlaskClient, key: str, body: dict[str, Any] = GOOD) -> Any:
    return client.post("/v1/webhooks", json=body, headers=bearer(key))


class TestSubscriptions:
    def test_the_secret_is_shown_once_and_sealed_at_rest(
        self, client: FlaskClient, keys: dict[str, str], sqlite_engine: Engine
    ) -> None:
        r = create(client, keys["admin"])
        assert r.status_code == 201, r.json
        created = r.json
        assert created["secret"].startswith("whsec_") and created["events"] == [
            "balance.low",
            "upstream.down",
        ]
        listed = client.get("/v1/webhooks", headers=bearer(keys["admin"])).json["webhooks"]
        assert [w["id"] for w in listed] == [created["id"]] and "secret" not in listed[0]
        one = client.get(f"/v1/webhooks/{created['id']}", headers=bearer(keys["admin"])).json
        assert "secret" not in one and one["status"] == "active"
        with sqlite_engine.connect() as conn:
            stored = conn.execute(text("SELECT secret FROM webhook_subscriptions")).scalar_one()
        assert created["secret"] not in stored

    def test_rotation_answers_a_new_secret_and_says_until_when_the_old_one_signs(
        self, client: FlaskClient, keys: dict[str, str]
    ) -> None:
        created = create(client, keys["admin"]).json
        r = client.post(f"/v1/webhooks/{created['id']}/rotate-secret", headers=bearer(keys["admin"]))
        assert r.status_code == 200
        assert r.json["secret"] != created["secret"] and r.json["previous_secret_until"] is not None

    def test_delete_then_404(self, client: FlaskClient, keys: dict[str, str]) -> None:
        created = create(client, keys["admin"]).json
        url = f"/v1/webhooks/{created['id']}"
        assert client.delete(url, headers=bearer(keys["admin"])).status_code == 204
        assert_problem(client.get(url, headers=bearer(keys["admin"])), 404)
        assert_problem(client.delete(url, headers=bearer(keys["admin"])), 404)

    @pytest.mark.parametrize(
        "url",
        [
            "http://hooks.example.com/x",  # plain http to a public host
            "https://169.254.169.254/latest",
            "http://127.0.0.1:9/x",  # loopback without CREDITCTL_ALLOW_LOOPBACK_URLS
            "https://good@evil.example/x",
            "file:///etc/passwd",
            "http://2130706433/",
        ],
    )
    def test_urls_follow_the_haier_url_rules(
        self, client: FlaskClient, keys: dict[str, str], url: str
    ) -> None:
        problem = assert_problem(create(client, keys["admin"], {**GOOD, "url": url}), 422)
        assert "url" in problem["errors"]

    def test_unknown_event_types_and_unknown_fields_are_refused(
        self, client: FlaskClient, keys: dict[str, str]
    ) -> None:
        assert_problem(create(client, keys["admin"], {**GOOD, "events": ["balance.lo"]}), 422)
        assert_problem(create(client, keys["admin"], {**GOOD, "events": []}), 422)
        assert_problem(create(client, keys["admin"], {**GOOD, "secret": "mine"}), 422)


class TestWhoMay:
    def test_other_roles_and_customer_limited_admins_get_403(
        self, client: FlaskClient, keys: dict[str, str], context: AppContext
    ) -> None:
        limited = create_api_key(
            name="admin-of-a", role="admin", customers=[CUSTOMER_A], uow=context.uow(), clock=context.clock
        ).secret
        created = create(client, keys["admin"]).json
        for key in (limited, keys["orders"], keys["auditor"]):
            assert_problem(create(client, key), 403)
            assert_problem(client.get("/v1/webhooks", headers=bearer(key)), 403)
            assert_problem(
                client.post(f"/v1/webhooks/{created['id']}/rotate-secret", headers=bearer(key)), 403
            )
            assert_problem(client.delete(f"/v1/webhooks/{created['id']}", headers=bearer(key)), 403)
        assert_problem(client.get("/v1/webhooks"), 401)


class TestAudited:
    def test_each_change_is_an_event_naming_the_key_and_request_and_no_secret(
        self, client: FlaskClient, keys: dict[str, str], context: AppContext
    ) -> None:
        admin = bearer(keys["admin"])
        r = client.post("/v1/webhooks", json=GOOD, headers={**admin, "X-Request-ID": "req-wh-create"})
        created = r.json
        rotated = client.post(f"/v1/webhooks/{created['id']}/rotate-secret", headers=admin).json
        client.delete(f"/v1/webhooks/{created['id']}", headers={**admin, "X-Request-ID": "req-wh-delete"})
        assert_problem(client.delete(f"/v1/webhooks/{created['id']}", headers=admin), 404)
        assert_problem(create(client, keys["admin"], {**GOOD, "url": "http://127.0.0.1:9/x"}), 422)

        def of_type(kind: str, key: str | None = None) -> list[dict[str, Any]]:
            who = bearer(key or keys["auditor"])
            r = client.get("/v1/audit/events", query_string={"type": kind}, headers=who)
            assert r.status_code == 200, r.json
            return r.json["events"]  # type: ignore[no-any-return]

        (made,) = of_type("webhook_subscription.created")
        (turned,) = of_type("webhook_subscription.secret_rotated")
        (gone,) = of_type("webhook_subscription.deleted")  # the refused delete and create wrote nothing
        assert {k: made["actor"][k] for k in ("name", "role", "owner")} == {
            "name": "test-admin",
            "role": "admin",
            "owner": "test-admin",
        }
        assert made["request_id"] == "req-wh-create" and gone["request_id"] == "req-wh-delete"
        assert made["subject"] == {"subscription_id": created["id"]} == gone["subject"]
        assert made["after"]["url"] == GOOD["url"] and gone["after"] is None
        assert turned["after"]["previous_secret_until"] is not None
        for event in (made, turned, gone):
            for secret in (created["secret"], rotated["secret"], "whsec_"):
                assert secret not in event["payload"]
        limited = create_api_key(
            name="auditor-of-a",
            role="auditor",
            customers=[CUSTOMER_A],
            uow=context.uow(),
            clock=context.clock,
        ).secret
        assert of_type("webhook_subscription.created", limited) == []  # a global event
