"""The Haier connection config on the wire (documentation; the adapter validates the content)."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields

_PASSWORD_AUTH = "; required when auth is password"
# The Haier adapter's bounds (adapters.haier.config, which the web adapter may not import; a test checks).
MAX_RATE_PER_S = 100
MAX_REFRESH_BEFORE_S = 3599


class HaierConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    base_url = fields.String(required=True, metadata={"example": "https://openplat-bj-aliyun.haier.net"})
    token_url = fields.String(
        metadata={
            "example": "https://openplat-bj-aliyun.haier.net/oauth2/auth",
            "description": "default for client_credentials: base_url + /oauth2/auth" + _PASSWORD_AUTH,
        }
    )
    auth = fields.String(required=True, metadata={"enum": ["client_credentials", "password"]})
    client_id = fields.String(required=True)
    client_secret = fields.String(
        required=True, metadata={"description": 'write-only; "set" keeps the stored one'}
    )
    username = fields.String(allow_none=True, metadata={"description": "required when auth is password"})
    password = fields.String(allow_none=True, metadata={"description": "write-only" + _PASSWORD_AUTH})
    auth_scheme = fields.String(required=True, metadata={"enum": ["Bearer", "none"]})
    customer_password = fields.String(
        allow_none=True, metadata={"description": "write-only; fallback password"}
    )
    customers = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        metadata={"description": "customer code → customer password (write-only)"},
    )
    timeouts = fields.Dict(
        keys=fields.String(), values=fields.Raw(), metadata={"example": {"connect_s": 5, "read_s": 30}}
    )
    rate_limit_per_s = fields.Raw(
        metadata={
            "type": "number",
            "example": 100,
            "exclusiveMinimum": True,
            "minimum": 0,
            "maximum": MAX_RATE_PER_S,
            "description": "Calls per second to Haier (default 100)",
        }
    )
    token_refresh_before_s = fields.Raw(
        metadata={
            "type": "number",
            "example": 600,
            "minimum": 0,
            "maximum": MAX_REFRESH_BEFORE_S,
            "description": "Renew a token this long before it expires (default 600)",
        }
    )
    is_active = fields.Boolean(required=True)


class RedactedConfigSchema(Schema):
    """What GET shows: every secret is "set" (or null when absent)."""

    name = fields.String()
    base_url = fields.String()
    token_url = fields.String()
    auth = fields.String()
    client_id = fields.String()
    client_secret = fields.String(metadata={"example": "set"})
    username = fields.String(allow_none=True)
    password = fields.String(allow_none=True)
    auth_scheme = fields.String()
    customer_password = fields.String(allow_none=True)
    customers = fields.Dict(keys=fields.String(), values=fields.String())
    timeouts = fields.Dict()
    rate_limit_per_s = fields.Raw()
    token_refresh_before_s = fields.Raw()
    is_active = fields.Boolean()
    updated_at = fields.String()
