"""Secrets kept at rest (WeChat session keys), sealed with a key derived from TROIKA_PII_KEY."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _key(secret: str, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
        secret.encode()
    )


def seal(plaintext: str, *, secret: str, purpose: str) -> str:
    """AES-GCM with a per-purpose key; the purpose is bound in, so a sealed value cannot be moved."""
    nonce = os.urandom(12)
    body = AESGCM(_key(secret, purpose)).encrypt(nonce, plaintext.encode(), purpose.encode())
    return base64.urlsafe_b64encode(nonce + body).decode()


def unseal(sealed: str, *, secret: str, purpose: str) -> str | None:
    """The plaintext, or None when it was sealed with another key (e.g. TROIKA_PII_KEY changed)."""
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
        return AESGCM(_key(secret, purpose)).decrypt(raw[:12], raw[12:], purpose.encode()).decode()
    except (InvalidTag, ValueError):
        return None


def keyed_hash(value: str, *, secret: str, purpose: str) -> str:
    """A lookup key for a value that must not be stored (an SMS code, a phone number)."""
    return hmac.new(_key(secret, purpose), value.encode(), hashlib.sha256).hexdigest()
