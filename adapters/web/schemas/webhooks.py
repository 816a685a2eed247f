"""Webhook subscriptions on the wire."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from creditctl.domain.webhook import EVENT_TYPES


class SubscriptionRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    url = fields.String(
        required=True,
        validate=validate.Length(min=1, max=2048),
        metadata={
            "example": "https://erp.example.com/hooks/creditctl",
            "pattern": "^https://",
            "description": "https to a public address (plain http only to a loopback address, and only when "
            "CREDITCTL_ALLOW_LOOPBACK_URLS is set); no user info, no private or link-local address",
        },
    )
    events = fields.List(
        fields.String(validate=validate.OneOf(sorted(EVENT_TYPES))),
        required=True,
        validate=validate.Length(min=1, max=len(EVENT_TYPES)),
        metadata={"example": ["balance.low", "credit.limit_changed"]},
    )


class SubscriptionSchema(Schema):
    id = fields.String(required=True)
    url = fields.String(required=True)
    events = fields.List(fields.String(), required=True)
    status = fields.String(required=True, metadata={"enum": ["active", "disabled"]})
    disabled_reason = fields.String(allow_none=True)
    previous_secret_until = fields.DateTime(
        allow_none=True, metadata={"description": "until when the previous secret also signs (rotation)"}
    )
    created_by = fields.String(required=True)
    created_at = fields.DateTime(required=True)


class NewSecretSchema(SubscriptionSchema):
    secret = fields.String(
        required=True, metadata={"description": "the signing secret, shown this once (sealed at rest)"}
    )


class SubscriptionListSchema(Schema):
    webhooks = fields.List(fields.Nested(SubscriptionSchema), required=True)
