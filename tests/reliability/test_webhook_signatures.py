"""Reliability item 10, webhook signatures, as a receiver checks them with the `verify` of
docs/order-systems.md (the pasted snippet, executed): first on signed headers made here (TestReadmeVerify,
TestRotation), then on what the service really sent over HTTP (TestOnTheWire): valid; one body byte
changed; the JSON re-serialised; the delivery verified 5 minutes later, or sent by a clock 5 minutes ahead;
a replayed id; the old secret during and after a rotation. Only the valid and in-rotation ones verify, and
a replayed id is processed once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from sqlalchemy import Engine

from adapters.fake.clock import FakeClock
from adapters.sql.unit_of_work import SqlUnitOfWork
from creditctl.domain.webhook import Subscription, SubscriptionStatus, retry_delay_s, signature_header
from creditctl.services.context import WebhookTools
from creditctl.services.webhook_delivery import deliver_round
from creditctl.services.webhooks import rotate_secret
from tests.adapters.test_webhook_delivery import subscribe, tools
from tests.webhook_receiver import Receiver, readme_snippet, readme_verify, running

pytestmark = pytest.mark.adapters  # TestOnTheWire delivers over HTTP from a SQLite outbox

SECRET, OLD = "whsec_new", "whsec_old"
BODY = b'{"id":"e1","type":"balance.low","created_at":"2026-12-01T00:00:00Z","data":{"available":"5.00"}}'
verify = readme_verify()


def signed(body: bytes = BODY, *, secrets: tuple[str, ...] = (SECRET,), at: float | None = None) -> str:
    return signature_header(secrets, int(time.time() if at is None else at), body)


class TestReadmeVerify:
    def test_the_snippet_is_a_dozen_lines_a_receiver_can_paste(self) -> None:
        assert len(readme_snippet().strip().splitlines()) <= 16

    def test_accepts_a_valid_signature(self) -> None:
        assert verify(SECRET, signed(), BODY)["id"] == "e1"

    def test_refuses_a_body_with_one_byte_changed(self) -> None:
        tampered = BODY.replace(b"5.00", b"6.00")
        with pytest.raises(ValueError, match="signature does not match"):
            verify(SECRET, signed(), tampered)

    def test_refuses_the_same_json_serialised_again(self) -> None:
        reserialised = json.dumps(json.loads(BODY)).encode()  # same data, other bytes (spaces)
        assert reserialised != BODY
        with pytest.raises(ValueError, match="signature does not match"):
            verify(SECRET, signed(), reserialised)

    @pytest.mark.parametrize("offset_s", [-300, 300])
    def test_refuses_a_timestamp_five_minutes_old_or_ahead(self, offset_s: int) -> None:
        with pytest.raises(ValueError, match="timestamp"):
            verify(SECRET, signed(at=time.time() + offset_s), BODY)

    def test_refuses_another_secret_and_a_missing_timestamp(self) -> None:
        with pytest.raises(ValueError, match="signature does not match"):
            verify("whsec_other", signed(), BODY)
        with pytest.raises(ValueError, match="no timestamp"):
            verify(SECRET, signed().split(",", 1)[1], BODY)

    def test_a_replayed_id_is_dropped_by_the_receiver_that_keeps_processed_ids(self) -> None:
        processed: set[str] = set()
        outcomes = []
        for _ in range(2):  # the same delivery sent twice (a replay, or a redelivery after a timeout)
            event = verify(SECRET, signed(), BODY)
            outcomes.append(event["id"] not in processed)
            processed.add(event["id"])
        assert outcomes == [True, False]


class TestRotation:
    def subscription(self, until: datetime) -> Subscription:
        now = datetime(2026, 12, 1, tzinfo=UTC)
        return Subscription(
            id="s",
            url="https://x.example",
            events=("balance.low",),
            secret=SECRET,
            previous_secret=OLD,
            previous_secret_until=until,
            status=SubscriptionStatus.ACTIVE,
            disabled_reason=None,
            created_by="t",
            created_at=now,
            updated_at=now,
        )

    def test_during_the_overlap_both_secrets_sign_and_both_verify(self) -> None:
        now = datetime(2026, 12, 1, tzinfo=UTC)
        secrets = self.subscription(now + timedelta(hours=24)).signing_secrets(now)
        header = signed(secrets=tuple(secrets))
        assert header.count("v1=") == 2
        assert verify(OLD, header, BODY) and verify(SECRET, header, BODY)

    def test_after_the_overlap_the_old_secret_no_longer_verifies(self) -> None:
        now = datetime(2026, 12, 1, tzinfo=UTC)
        secrets = self.subscription(now - timedelta(seconds=1)).signing_secrets(now)
        header = signed(secrets=tuple(secrets))
        assert header.count("v1=") == 1
        assert verify(SECRET, header, BODY)
        with pytest.raises(ValueError, match="signature does not match"):
            verify(OLD, header, BODY)


def test_retry_delays_grow_exponentially_up_to_the_cap_scaled_by_jitter() -> None:
    delays = [retry_delay_s(n, base_s=10, cap_s=3600, jitter=1.0) for n in range(1, 11)]
    assert delays[:4] == [10, 20, 40, 80] and max(delays) == 3600
    assert retry_delay_s(3, base_s=10, cap_s=3600, jitter=0.5) == 20


class TestOnTheWire:
    """Deliveries captured at a real receiver, sent over HTTP by the service's own delivery round."""

    @pytest.fixture
    def wire(self, sqlite_engine: Engine, tmp_path: Path) -> Iterator[Wire]:
        clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
        t = tools(sqlite_engine, clock, tmp_path)
        receiver = Receiver("")
        with running(receiver):
            receiver.secret = subscribe(t, receiver.url, ("upstream.down",))
            yield Wire(t, clock, receiver, lambda: SqlUnitOfWork(sqlite_engine))

    def test_what_the_service_sends_verifies_and_every_altered_copy_does_not(self, wire: Wire) -> None:
        header, body = wire.send("wire-1")
        assert verify(wire.receiver.secret, header, body)["id"] == "wire-1"
        flipped = bytearray(body)
        flipped[len(body) // 2] ^= 0x01
        reserialised = json.dumps(json.loads(body), indent=1).encode()
        assert reserialised != body
        for altered in (bytes(flipped), reserialised, body + b" ", body[:-1]):
            with pytest.raises(ValueError, match="signature does not match"):
                verify(wire.receiver.secret, header, altered)
        with pytest.raises(ValueError, match="signature does not match"):
            verify("whsec_another", header, body)

    def test_a_delivery_verified_5_minutes_later_is_refused(self, wire: Wire) -> None:
        header, body = wire.send("late")
        later = datetime.now(UTC) + timedelta(minutes=5)
        with freeze_time(later), pytest.raises(ValueError, match="timestamp"):
            verify(wire.receiver.secret, header, body)

    def test_a_delivery_from_a_sender_5_minutes_ahead_is_refused(self, wire: Wire) -> None:
        header, body = wire.send("ahead", unix_time=lambda: time.time() + 300)
        with pytest.raises(ValueError, match="timestamp"):
            verify(wire.receiver.secret, header, body)
        assert "ahead" not in wire.receiver.processed  # the receiver refused it too

    def test_a_replayed_delivery_is_processed_once(self, wire: Wire) -> None:
        header, body = wire.send("replayed")
        assert wire.receiver.handle(header, body) == 200  # the same bytes again, as an attacker might
        assert list(wire.receiver.processed) == ["replayed"]
        assert wire.receiver.duplicates["replayed"] == 1

    def test_the_old_secret_verifies_during_the_rotation_overlap_and_not_after(self, wire: Wire) -> None:
        old = wire.receiver.secret
        (sub,) = wire.tools.store.all()
        new = rotate_secret(sub.id, store=wire.tools.store, box=wire.tools.box, overlap_s=3600).secret
        header, body = wire.send("during")
        assert header.count("v1=") == 2
        assert verify(old, header, body)["id"] == verify(new, header, body)["id"] == "during"
        wire.clock.advance(3601)  # the database's clock: the overlap is over
        wire.receiver.secret = new
        header, body = wire.send("after")
        assert header.count("v1=") == 1
        assert verify(new, header, body)["id"] == "after"
        with pytest.raises(ValueError, match="signature does not match"):
            verify(old, header, body)


@dataclass
class Wire:
    tools: WebhookTools
    clock: FakeClock
    receiver: Receiver
    uow: Callable[[], SqlUnitOfWork]

    def send(self, event_id: str, unix_time: Callable[[], float] = time.time) -> tuple[str, bytes]:
        """Write one event and let the service deliver it: the request that reached the receiver."""
        with self.uow() as uow:
            uow.outbox.add(event_id=event_id, topic="upstream.down", payload={"n": 1}, now=uow.now())
            uow.commit()
        seen = len(self.receiver.raw)
        t = self.tools
        deliver_round(store=t.store, notifier=t.notifier, box=t.box, policy=t.policy, unix_time=unix_time)
        assert len(self.receiver.raw) == seen + 1, "the delivery did not reach the receiver"
        return self.receiver.raw[-1]
