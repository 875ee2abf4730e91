"""Users as the graph holds them: who owns an identity, the active users, and locking one to write."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.domain import IdentityKey, UserRecord
from app.errors import NotFound
from app.services.changes import Topic, lock_by_bump, users_changed
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


async def lock_user_to_change(session: AsyncSession, user_id: int, *, topics: Sequence[Topic]) -> UserRecord:
    """lock_active_user for a writer sure to change the user: its view marked changed (`topics`) too.

    An active user's id (nearly always) costs one statement, the version bump that locks the row;
    an absorbed id is resolved and locked first.
    """
    user = await lock_by_bump(session, user_id, topics=topics)
    if user is None:
        user = await lock_active_user(session, user_id)
        await users_changed(session, [user.id], topics=topics)
    return user


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
