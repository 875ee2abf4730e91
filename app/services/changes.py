"""The one door for "this user's view changed": every writer calls it in the change's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from app.stores import identity as store


class Topic(StrEnum):
    """What changed; subscriptions (issue 5) will filter on it."""

    IDENTITY = "identity"
    ORDER = "order"
    CART = "cart"
    BEHAVIOR = "behavior"
    CONSENT = "consent"
    MEMBERSHIP = "membership"
    ROLE = "role"


async def users_changed(session: AsyncSession, user_ids: Iterable[int], *, topics: Iterable[Topic]) -> None:
    """Bump the users' data versions (the response cache checks them before serving a hit).

    Call it in the same hub transaction as the change, or, for a channel store in another
    database, right after that store's commit: a reader that sees the new version must also
    see the new data. The outbox of the sync feed belongs here too.
    """
    del topics  # recorded by the outbox once it exists; versions do not depend on the topic
    await store.bump_versions(session, user_ids)
