"""Webhook subscription changes on SQLite and PostgreSQL: each is one audit event written in the change's
own transaction (create, rotate, delete, disable), naming who and the state before/after, never a
secret; a refused or lost change writes none; the chain still verifies."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from adapters.bootstrap import Settings, webhook_tools
from adapters.sql.database_clock import SqlDatabaseClock
from adapters.sql.secret_box import FernetSecretBox
from adapters.sql.tables import audit_events
from adapters.sql.unit_of_work import SqlUnitOfWork
from creditctl.domain.audit import SYSTEM, Actor, AuditEntry, AuditEvent, AuditQuery
from creditctl.domain.errors import InvalidRequest
from creditctl.services.audit import list_audit_events, verify_audit
from creditctl.services.context import WebhookTools
from creditctl.services.webhooks import (
    UnknownSubscription,
    create_subscription,
    delete_subscription,
    disable_subscription,
    rotate_secret,
)

pytestmark = pytest.mark.adapters

ALICE = Actor(name="alice", role="admin", request_id="req-wh-1")
TYPES = (
    "webhook_subscription.created",
    "webhook_subscription.secret_rotated",
    "webhook_subscription.deleted",
    "webhook_subscription.disabled",
)
URL = "https://hooks.example.com/creditctl"


@pytest.fixture
def t(engine: Engine, tmp_path: Path) -> WebhookTools:
    settings = Settings(instance_path=tmp_path, database_url=str(engine.url))
    return webhook_tools(settings, engine, SqlDatabaseClock(engine), FernetSecretBox(("k" * 43 + "=",)))


def trail(engine: Engine, subscription_id: str) -> list[AuditEvent]:
    """The subscription's events, sealed, in chain order (PostgreSQL keeps other tests' events too)."""
    found: list[AuditEvent] = []
    for type_ in TYPES:
        cursor = 0
        while True:
            q = AuditQuery(type=type_, after_position=cursor, limit=500)
            page = list_audit_events(q, uow=SqlUnitOfWork(engine))
            found += [e for e in page if e.data["subject"] == {"subscription_id": subscription_id}]
            if len(page) < 500:
                break
            cursor = page[-1].position or 0
    return sorted(found, key=lambda e: e.position or 0)


def event_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_events)).scalar_one())


def assert_no_secret(event: AuditEvent, *secrets: str | None) -> None:
    assert "whsec_" not in event.payload
    for secret in secrets:
        assert secret and secret not in event.payload


def subscribe(t: WebhookTools) -> tuple[str, str]:
    new = create_subscription(
        URL, ["balance.low", "upstream.down"], store=t.store, box=t.box, check_url=t.check_url, actor=ALICE
    )
    return new.subscription.id, new.secret


class TestEachChangeIsOneEvent:
    def test_create_records_who_and_what_it_subscribes_without_the_secret(
        self, engine: Engine, t: WebhookTools
    ) -> None:
        sub_id, secret = subscribe(t)
        stored = t.store.get(sub_id)
        assert stored is not None
        (event,) = trail(engine, sub_id)
        data = event.data
        assert data["type"] == "webhook_subscription.created"
        assert data["actor"] == {"name": "alice", "role": "admin"} and data["request_id"] == "req-wh-1"
        assert data["subject"] == {"subscription_id": sub_id}
        assert "customer_code" not in data["subject"]  # a global event
        assert data["before"] is None
        assert data["after"]["url"] == URL and data["after"]["events"] == ["balance.low", "upstream.down"]
        assert data["after"]["status"] == "active" and data["after"]["created_by"] == "alice"
        assert_no_secret(event, secret, stored.secret)

    def test_rotation_records_when_the_secret_changed_and_neither_secret(
        self, engine: Engine, t: WebhookTools
    ) -> None:
        sub_id, old = subscribe(t)
        sealed_old = t.store.get(sub_id).secret  # type: ignore[union-attr]
        new = rotate_secret(sub_id, store=t.store, box=t.box, overlap_s=600, actor=ALICE)
        created, rotated = trail(engine, sub_id)
        data = rotated.data
        assert data["type"] == "webhook_subscription.secret_rotated"
        assert data["actor"] == {"name": "alice", "role": "admin"} and data["request_id"] == "req-wh-1"
        assert data["before"] == created.data["after"]
        assert data["before"]["previous_secret_until"] is None
        after = new.subscription
        assert data["after"]["secret_rotated_at"] == data["after"]["updated_at"]
        assert data["at"] >= data["after"]["updated_at"]  # the database's time of the event's INSERT
        assert data["after"]["previous_secret_until"] is not None
        assert after.previous_secret_until is not None
        assert (after.previous_secret_until - after.updated_at).total_seconds() == 600
        assert_no_secret(rotated, old, new.secret, sealed_old, after.secret)

    def test_delete_records_the_state_it_removed(self, engine: Engine, t: WebhookTools) -> None:
        sub_id, secret = subscribe(t)
        sealed = t.store.get(sub_id).secret  # type: ignore[union-attr]
        delete_subscription(sub_id, store=t.store, actor=ALICE)
        assert t.store.get(sub_id) is None
        created, deleted = trail(engine, sub_id)
        assert deleted.data["type"] == "webhook_subscription.deleted"
        assert deleted.data["actor"] == {"name": "alice", "role": "admin"}
        assert deleted.data["before"] == created.data["after"] and deleted.data["after"] is None
        assert_no_secret(deleted, secret, sealed)

    def test_disable_is_the_systems_once(self, engine: Engine, t: WebhookTools) -> None:
        sub_id, secret = subscribe(t)
        assert disable_subscription(sub_id, "the receiver answered 410 Gone", store=t.store)
        assert not disable_subscription(sub_id, "again", store=t.store)  # disabled already: no event
        assert not disable_subscription("no-such-id", "gone", store=t.store)
        _created, disabled = trail(engine, sub_id)
        data = disabled.data
        assert data["type"] == "webhook_subscription.disabled"
        assert data["actor"] == {"name": SYSTEM.name, "role": SYSTEM.role} and data["request_id"] is None
        assert data["before"]["status"] == "active"
        assert data["after"]["status"] == "disabled"
        assert data["after"]["disabled_reason"] == "the receiver answered 410 Gone"
        assert_no_secret(disabled, secret)
        assert verify_audit(uow=SqlUnitOfWork(engine)).ok


class TestNoChangeNoEvent:
    def test_refused_and_unknown_changes_write_nothing(self, engine: Engine, t: WebhookTools) -> None:
        start = event_count(engine)
        with pytest.raises(InvalidRequest):
            create_subscription(
                "http://169.254.169.254/x", ["balance.low"], store=t.store, box=t.box, check_url=t.check_url
            )
        with pytest.raises(InvalidRequest):
            create_subscription(URL, ["no.such"], store=t.store, box=t.box, check_url=t.check_url)
        for change in (
            lambda: delete_subscription("no-such-id", store=t.store, actor=ALICE),
            lambda: rotate_secret("no-such-id", store=t.store, box=t.box, actor=ALICE),
        ):
            with pytest.raises(UnknownSubscription):
                change()
        assert event_count(engine) == start
        assert t.store.all() == []

    def test_a_change_worked_out_from_a_stale_read_writes_neither_change_nor_event(
        self, engine: Engine, t: WebhookTools
    ) -> None:
        sub_id, _ = subscribe(t)
        stale = t.store.get(sub_id)
        assert stale is not None
        rotate_secret(sub_id, store=t.store, box=t.box, actor=ALICE)  # someone else, meanwhile
        start, now = event_count(engine), t.store.now()
        entry = AuditEntry("webhook_subscription.secret_rotated", at=now, actor=ALICE, subject={})
        lost = replace(stale, secret=t.box.seal("whsec_lost"), updated_at=now)
        assert not t.store.save(lost, was=stale, audit=entry)
        assert not t.store.delete(stale, audit=entry)
        assert not t.store.disable(stale, "gone", now, audit=entry)
        assert event_count(engine) == start
        current = t.store.get(sub_id)
        assert current is not None and current.secret != lost.secret and current.status == "active"

    def test_the_chain_verifies_after_every_kind_of_change(self, engine: Engine, t: WebhookTools) -> None:
        kept, _ = subscribe(t)
        gone, _ = subscribe(t)
        rotate_secret(kept, store=t.store, box=t.box, actor=ALICE)
        disable_subscription(kept, "410", store=t.store)
        delete_subscription(gone, store=t.store, actor=ALICE)
        assert [e.data["type"] for e in trail(engine, kept)] == [TYPES[0], TYPES[1], TYPES[3]]
        assert [e.data["type"] for e in trail(engine, gone)] == [TYPES[0], TYPES[2]]
        report = verify_audit(uow=SqlUnitOfWork(engine))
        assert report.ok, report.problem
        assert report.unsealed == 0
