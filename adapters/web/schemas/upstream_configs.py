"""The Haier connection config on the wire (documentation; the adapter validates the content)."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields

from adapters.web.schemas.text import NOT_BLANK
from adapters.web.schemas.urls import PUBLIC, https_url

_PASSWORD_AUTH = "; required when auth is password"
# The Haier adapter's bounds (adapters.haier.config, which the web adapter may not import; a test checks).
MAX_RATE_PER_S = 100
MAX_REFRESH_BEFORE_S = 3599
MAX_TEXT = 512
MAX_CONNECT_S = 120
MAX_READ_S = 300
CONFIG_NAME = r"^[A-Za-z0-9_-]{1,64}$"
CUSTOMER_CODE = r"^[A-Za-z0-9_-]{1,32}$"
_KEEP = 'write-only; "set" keeps the stored one (while base_url, token_url and auth stay the same)'


def _text(description: str = "", **metadata: Any) -> dict[str, Any]:
    """A text member: not blank, at most MAX_TEXT characters."""
    said = f"{description}; not blank" if description else "Not blank"
    return {"pattern": NOT_BLANK, "maxLength": MAX_TEXT, "description": said, **metadata}


def _seconds(maximum: int, default: int) -> dict[str, Any]:
    return {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": maximum,
        "description": f"Seconds, above 0 and at most {maximum} (default {default})",
    }


class HaierConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    base_url = fields.String(
        required=True, metadata=https_url(PUBLIC, example="https://openplat-bj-aliyun.haier.net")
    )
    token_url = fields.String(
        metadata=https_url(
            f"{PUBLIC}; default for client_credentials: base_url + /oauth2/auth{_PASSWORD_AUTH}",
            example="https://openplat-bj-aliyun.haier.net/oauth2/auth",
        )
    )
    auth = fields.String(required=True, metadata={"enum": ["client_credentials", "password"]})
    client_id = fields.String(required=True, metadata=_text())
    client_secret = fields.String(required=True, metadata=_text(_KEEP))
    username = fields.String(allow_none=True, metadata=_text("Required when auth is password"))
    password = fields.String(allow_none=True, metadata=_text(_KEEP + _PASSWORD_AUTH))
    auth_scheme = fields.String(required=True, metadata={"enum": ["Bearer", "none"]})
    customer_password = fields.String(allow_none=True, metadata=_text("The fallback password, " + _KEEP))
    customers = fields.Dict(
        keys=fields.String(),
        values=fields.String(metadata={"minLength": 1}),
        metadata={
            "description": "customer code (1 to 32 letters, digits, '-' or '_': " + CUSTOMER_CODE + ") → "
            'customer password (write-only, not empty; "set" keeps the stored one)',
        },
    )
    timeouts = fields.Dict(
        keys=fields.String(),
        metadata={
            "example": {"connect_s": 5, "read_s": 30},
            "properties": {
                "connect_s": _seconds(MAX_CONNECT_S, 5),
                "read_s": _seconds(MAX_READ_S, 30),
            },
            "additionalProperties": False,
        },
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
