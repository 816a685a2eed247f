"""Webhook subscriptions on the wire."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from adapters.web.schemas.urls import MAX_URL_LENGTH, PUBLIC, https_url
from creditctl.domain.webhook import EVENT_TYPES


class SubscriptionRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    url = fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_URL_LENGTH),
        metadata=https_url(
            f"{PUBLIC}; no user info. (A server run with CREDITCTL_ALLOW_LOOPBACK_URLS also takes "
            "plain http to a loopback address, for a local receiver.)",
            example="https://erp.example.com/hooks/creditctl",
        ),
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
