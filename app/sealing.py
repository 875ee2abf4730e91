"""Secrets and PII at rest: AES-GCM under a rotating keyring, and a stable keyed hash (blind index).

A sealed value is `<kid>.<base64url(nonce | ciphertext | tag)>`, made by `cryptography`'s AESGCM
(the AEAD construct; nothing hand-made but the nonce prefix). `kid` names the key that sealed it:
opening picks that key instead of trying each, and `troika pii re-encrypt` finds the values an
older key sealed with a plain `NOT LIKE 'kid.%'`. The associated data binds the purpose (which
column the value belongs to) and the kid, so a ciphertext copied elsewhere or relabelled fails to
open. Keys come from settings (TROIKA_PII_KEYS, newest first): the newest seals, all of them open.

The blind index is HMAC-SHA256 under a separate key (TROIKA_PII_INDEX_KEY) that never rotates:
equal values must keep equal indexes for lookups and unique constraints to work.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    from app.settings import Settings

NONCE = 12
INDEX_CHARS = 43  # a SHA-256 digest in base64url, without padding


class SealError(Exception):
    """A sealed value that no configured key opens (a key was dropped, or the value was altered)."""


def _derive(secret: str, info: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode()).derive(secret.encode())


def key_id(secret: str) -> str:
    """A key's public name: 8 hex characters of a hash of its derived key (never of the secret itself)."""
    return hashlib.sha256(_derive(secret, "troika pii key id")).hexdigest()[:8]


class Keyring:
    """Seals with the newest key, opens with any; indexes with the one stable index key."""

    def __init__(self, secrets: Sequence[str], index_secret: str) -> None:
        if not secrets:
            raise ValueError("a keyring needs at least one key")
        self._keys = {key_id(s): AESGCM(_derive(s, "troika pii encryption v1")) for s in secrets}
        if len(self._keys) != len(secrets):
            raise ValueError("two PII keys share a key id; use distinct keys")
        self.current = key_id(secrets[0])
        self.kids = tuple(self._keys)
        self._index_secret = index_secret
        self._index_keys: dict[str, bytes] = {}

    def seal(self, plaintext: str, *, purpose: str) -> str:
        """A fresh ciphertext of `plaintext` under the newest key (a new nonce every time)."""
        nonce = os.urandom(NONCE)
        body = self._keys[self.current].encrypt(
            nonce, plaintext.encode(), f"{purpose}|{self.current}".encode()
        )
        return f"{self.current}.{base64.urlsafe_b64encode(nonce + body).decode()}"

    def unseal(self, sealed: str, *, purpose: str) -> str:
        """The plaintext; SealError when no configured key opens it."""
        kid, _, body = sealed.partition(".")
        aead = self._keys.get(kid)
        if aead is None:
            raise SealError(f"sealed with key {kid!r}, which is not configured (TROIKA_PII_KEYS)")
        try:
            raw = base64.urlsafe_b64decode(body.encode())
            return aead.decrypt(raw[:NONCE], raw[NONCE:], f"{purpose}|{kid}".encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise SealError(f"a {purpose} value does not open with key {kid!r}") from exc

    def try_unseal(self, sealed: str, *, purpose: str) -> str | None:
        try:
            return self.unseal(sealed, purpose=purpose)
        except SealError:
            return None

    def is_current(self, sealed: str) -> bool:
        return sealed.startswith(f"{self.current}.")

    def reseal(self, sealed: str, *, purpose: str) -> str:
        """The same plaintext under the newest key (unchanged when it is already there)."""
        return (
            sealed
            if self.is_current(sealed)
            else self.seal(self.unseal(sealed, purpose=purpose), purpose=purpose)
        )

    def index(self, value: str, *, purpose: str) -> str:
        """The blind index of `value`: equal values, equal indexes; nothing else to learn from it."""
        key = self._index_keys.get(purpose)
        if key is None:
            key = self._index_keys[purpose] = _derive(self._index_secret, f"troika blind index {purpose} v1")
        digest = hmac.digest(key, value.encode(), "sha256")
        return base64.urlsafe_b64encode(digest).decode()[:INDEX_CHARS]


@lru_cache(maxsize=16)
def _keyring(secrets: tuple[str, ...], index_secret: str) -> Keyring:
    return Keyring(secrets, index_secret)


def keyring_for(settings: Settings) -> Keyring:
    """The keyring of these settings (built once per set of keys)."""
    return _keyring(tuple(settings.pii_secrets()), settings.secret("pii_index_key"))
