"""Users as the graph holds them: who owns an identity, the active users, and locking one to write."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.domain import IdentityKey, UserRecord
from app.errors import NotFound
from app.stores import identity as store

MAX_ATTEMPTS = 3


def user_not_found(user_id: int) -> NotFound:
    return NotFound(f"user {user_id} does not exist", code="USER_NOT_FOUND")


async def lock_active_user(session: AsyncSession, user_id: int) -> UserRecord:
    """The active user `user_id` resolves to, row-locked (PostgreSQL; SQLite writers are serial).

    A merge may absorb the user between resolving and locking: then resolve again.
    """
    for _ in range(MAX_ATTEMPTS):
        user = (await store.resolve_users(session, [user_id])).get(user_id)
        if user is None:
            raise user_not_found(user_id)
        locked = await store.lock_users(session, [user.id])
        if user.id in locked and locked[user.id] is None:
            return user
    raise RuntimeError(f"user {user_id} kept being merged while we tried to lock it")


async def owner_of(session: AsyncSession, key: IdentityKey) -> int | None:
    """The id of the user holding `key` now, or None when nobody does."""
    found = (await store.identities_by_keys(session, [key])).get(key)
    return None if found is None else found.user_id


async def active_users(
    session: AsyncSession, *, first: int, after_id: int | None
) -> tuple[list[UserRecord], int]:
    """Active users by id after `after_id` (one more than `first` tells of a next page), and their count."""
    rows = await store.active_users_page(session, first=first, after_id=after_id)
    return rows, await store.count_active_users(session)
