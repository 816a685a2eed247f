"""URLs the service will call (webhooks, the Haier connection), as the document states them.

The server's rule is adapters.outbound.url_policy.check_url: https; no whitespace, control characters or
backslashes; no user info; a host that is a name (ASCII, in labels of letters, digits, "-" and "_"), not a
numeric spelling, not localhost; a port from 0 to 65535; at most 2,048 characters; and, once resolved,
public addresses only. HTTPS_URL states all but the last (which the world decides, not the request): a
host name whose last label starts with a letter (never numeric), with at least one dot and no trailing
one, and a port from 1 without leading zeros, which is somewhat narrower than the server takes."""

from __future__ import annotations

from adapters.web.schemas.text import WHITESPACE

_LABEL = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}"
_LOCALHOST = "[Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt]"
_HOST = rf"(?!(?:{_LABEL}\.)+{_LOCALHOST}(?:[:/?#]|$))(?:{_LABEL}\.)+[A-Za-z][A-Za-z0-9_-]{{0,62}}"
_PORT = r"(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?"
_REST = rf"(?:[/?#][^{WHITESPACE}\x00-\x1f\\]*)?"
HTTPS_URL = f"^https://{_HOST}{_PORT}{_REST}$"
MAX_URL_LENGTH = 2048
PUBLIC = (
    "https to a host name with public addresses only (checked when it is set and before every call: a "
    "name that resolves to a private, loopback or link-local address is refused)"
)


def https_url(description: str, **metadata: object) -> dict[str, object]:
    """metadata for a URL field the service will call."""
    return {"pattern": HTTPS_URL, "maxLength": MAX_URL_LENGTH, "description": description, **metadata}
