"""How identity values are kept at rest: a phone as its blind index plus a ciphertext, the rest as is.

The identity graph's `value` column holds a phone's blind index, so the ownership constraints
(unique (kind, namespace, value)) hold on the index, and a lookup is an index lookup; the
ciphertext (`sealed`) is what shows the number to those who may see it. Channel stores key a
phone-identified record by the same index (`PHONE||<index>`), so no store holds a phone in clear.
Stores reach the keyring through their session (`keyring_of`): every sessionmaker of
`app.db.engine` carries it, so callers above the stores see plaintext values only.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.domain import IdentityKey, IdentityKind
from app.sealing import Keyring

SESSION_KEY = "troika.keyring"
PHONE = "phone"  # the purpose of phone indexes and ciphertexts
SEALED_KINDS = frozenset({IdentityKind.PHONE})


def keyring_of(session: AsyncSession) -> Keyring:
    """The keyring a store uses: the one the session's sessionmaker was built with."""
    keyring = session.info.get(SESSION_KEY)
    if not isinstance(keyring, Keyring):
        raise RuntimeError("this session has no PII keyring (make sessions with app.db.engine)")
    return keyring


def stored_value(keyring: Keyring, kind: IdentityKind | str, value: str) -> str:
    """The `value` column of an identity: a phone's blind index, any other value as it is."""
    return keyring.index(value, purpose=PHONE) if kind == IdentityKind.PHONE else value


def sealed_value(keyring: Keyring, kind: IdentityKind | str, value: str) -> str | None:
    """The `sealed` column: a phone's ciphertext; None for kinds kept in clear."""
    return keyring.seal(value, purpose=PHONE) if kind == IdentityKind.PHONE else None


def opened(keyring: Keyring, stored: str, sealed: str | None) -> str:
    """An identity's value from its columns."""
    return stored if sealed is None else keyring.unseal(sealed, purpose=PHONE)


def ref(kind: IdentityKind | str, namespace: str, stored: str) -> str:
    """How channel stores name an identity: "KIND|namespace|stored value" (never a phone in clear)."""
    return f"{kind}|{namespace}|{stored}"


def ref_of(keyring: Keyring, key: IdentityKey) -> str:
    """`ref` of an identity in clear (ingestion asks once per person per batch)."""
    if key.kind is IdentityKind.PHONE:
        return f"PHONE|{key.namespace}|{keyring.index(key.value, purpose=PHONE)}"
    return f"{key.kind}|{key.namespace}|{key.value}"
