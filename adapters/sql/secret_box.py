"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with MultiFernet rotation, from `cryptography`.

Keys come from CREDITCTL_SECRET_KEYS, newest first. A key may be a Fernet key or any passphrase of at
least 16 characters, stretched with HKDF-SHA256 into one."""

from __future__ import annotations

import base64
import binascii

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from creditctl.ports.secret_box import SecretUnreadable

_PREFIX = "enc:v1:"


def _fernet(key: str) -> Fernet:
    try:
        if len(base64.urlsafe_b64decode(key.encode())) == 32:
            return Fernet(key.encode())
    except (binascii.Error, ValueError):
        pass
    if len(key) < 16:
        raise ValueError("a secret key must be a Fernet key or a passphrase of at least 16 characters")
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"creditctl-secrets", info=b"fernet-v1").derive(
        key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


class FernetSecretBox:
    def __init__(self, keys: tuple[str, ...] | list[str]) -> None:
        if not keys:
            raise ValueError("at least one secret key is needed")
        self._box = MultiFernet([_fernet(k) for k in keys])

    def seal(self, plaintext: str) -> str:
        return _PREFIX + self._box.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        if not sealed.startswith(_PREFIX):
            raise SecretUnreadable("not a sealed secret")
        try:
            return self._box.decrypt(sealed.removeprefix(_PREFIX).encode()).decode()
        except InvalidToken:
            raise SecretUnreadable("a stored secret cannot be decrypted with the configured keys") from None

    def reseal(self, sealed: str) -> str:
        if not sealed.startswith(_PREFIX):
            raise SecretUnreadable("not a sealed secret")
        try:
            return _PREFIX + self._box.rotate(sealed.removeprefix(_PREFIX).encode()).decode()
        except InvalidToken:
            raise SecretUnreadable("a stored secret cannot be decrypted with the configured keys") from None
