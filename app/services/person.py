"""A person, for the PIPL rights (export, erasure): a merge cluster and the identities that are theirs.

The identities that are the person's: those the cluster holds now, and those it held once that
nobody holds now (an unlinked APP account: its records are still theirs). One the person held
that another user holds now (a recycled phone, an identity moved by an unmerge) is that user's:
channel data follows the identity, as the unified view does.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app import pii
from app.domain import IdentityKind, UserRecord
from app.services.users import user_not_found
from app.stores import identity as identity_store
from app.stores import personal as store
from app.stores.personal import StoredKey


@dataclass(frozen=True)
class Person:
    user: UserRecord  # the active user the id resolved to (the cluster's root)
    ids: tuple[int, ...]  # the root first, then every user merged into it
    keys: frozenset[StoredKey]  # the person's identities, as stored

    @property
    def refs(self) -> list[str]:
        """How channel stores name the person's identities."""
        return sorted(pii.ref(kind, namespace, value) for kind, namespace, value in self.keys)

    @property
    def phone_indexes(self) -> list[str]:
        return sorted(value for kind, _, value in self.keys if kind == IdentityKind.PHONE)

    @property
    def openids(self) -> list[tuple[str, str]]:
        return sorted(
            (namespace, value) for kind, namespace, value in self.keys if kind == IdentityKind.OPENID
        )


async def find_person(session: AsyncSession, user_id: int) -> Person:
    """The person `user_id` belongs to (an absorbed id: its survivor's whole cluster)."""
    user = (await identity_store.resolve_users(session, [user_id])).get(user_id)
    if user is None:
        raise user_not_found(user_id)
    ids = await store.cluster_of(session, user.id)
    keys = await store.historic_keys(session, ids)
    keys -= await store.held_by_others(session, keys, ids)
    return Person(user, tuple(ids), frozenset(keys))
