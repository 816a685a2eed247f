"""The secret box port: how secrets (client secrets, passwords, tokens) are sealed at rest."""

from __future__ import annotations

from typing import Protocol

from creditctl.domain.errors import CreditctlError


class SecretUnreadable(CreditctlError):
    """A sealed value that no configured key opens (tampered, or its key was retired too early)."""

    code = "secret.unreadable"


class SecretBox(Protocol):
    def seal(self, plaintext: str) -> str:
        """Encrypt with the newest key; the result is ASCII text safe to store."""
        ...

    def open(self, sealed: str) -> str:
        """Decrypt with whichever configured key sealed it; raises SecretUnreadable otherwise."""
        ...

    def reseal(self, sealed: str) -> str:
        """Re-encrypt under the newest key (key rotation); raises SecretUnreadable if unreadable."""
        ...
