"""Writers of a user's permission data lock the user first, so each user's changes form one order."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.domain import UserRecord
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
