"""Scrub secrets out of any text before it reaches a log, an exception message or an API answer.

Upstream error bodies may echo the token or the passwords we sent, so every piece of upstream text
passes through here. Two nets: the known secret values (and their encodings), and patterns that
look like credentials whatever their value (`Bearer xxx`, `"access_token": "..."`, JWTs).
"""

from __future__ import annotations

import base64
import re
import threading
from collections import deque
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
_SECRET_KEYS = (
    r"access_token|refresh_token|id_token|token|client_secret|clientSecret|secret|password|passwd"
    r"|customerPassword|customer_password|authorization"
)
_PATTERNS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*"), r"\1 " + MASK),
    (
        re.compile(rf"(?i)([\"']?\b(?:{_SECRET_KEYS})\b[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,&;}}\]]+)"),
        r"\1" + MASK,
    ),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), MASK),
)


def scrub(text: object, secrets: Iterable[str] = ()) -> str:
    """`text` as a string with the given secret values and anything credential-shaped masked."""
    out = str(text)
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    for _ in range(4):  # again, in case masking joined pieces into a secret (a secret made of "*")
        if not any(secret in out for secret in ordered):
            break
        for secret in ordered:
            out = out.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        out = pattern.sub(replacement, out)
    return out


def _variants(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote_plus(secret)}


class Redactor:
    """Knows the secrets of one connection (configured ones plus tokens seen at run time)."""

    def __init__(self, secrets: Iterable[str | None] = (), *, keep_tokens: int = 16) -> None:
        self._lock = threading.Lock()
        self._static: set[str] = set()
        for secret in secrets:
            if secret:
                self._static |= _variants(secret)
        self._dynamic: deque[str] = deque(maxlen=keep_tokens)

    def add_basic(self, user: str, password: str) -> None:
        """Also mask the Basic credential built from `user:password`."""
        encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        with self._lock:
            self._static.add(encoded)

    def add(self, secret: str | None) -> None:
        """Remember a secret learned at run time (a token); the oldest ones are forgotten."""
        if not secret:
            return
        with self._lock:
            if secret not in self._dynamic:
                self._dynamic.append(secret)

    def scrub(self, text: object) -> str:
        """`text` with every known secret and credential-shaped value masked."""
        with self._lock:
            secrets = [*self._static, *self._dynamic]
        return scrub(text, secrets)
