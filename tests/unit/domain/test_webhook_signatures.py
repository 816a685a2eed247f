"""Webhook signatures as a receiver checks them with the `verify` of docs/order-systems.md (pasted snippet,
executed)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from creditctl.domain.webhook import Subscription, SubscriptionStatus, retry_delay_s, signature_header
from tests.webhook_receiver import readme_snippet, readme_verify

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
