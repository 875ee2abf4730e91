"""Real-time sync (issue 5): the change feed's types and subscriptions."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry

from graphql_schema.common import not_yet
from graphql_schema.identity import User
from graphql_schema.permissions import AUTHENTICATED


@strawberry.type(description="One change to a user, from the outbox.")
class UserChange:
    user_id: strawberry.ID = strawberry.field(description="The user that changed.")
    topic: str = strawberry.field(
        description="What changed: IDENTITY, MERGE, CONSENT, MEMBERSHIP, ROLE, ORDER, CART, BEHAVIOR"
    )
    cursor: str = strawberry.field(description="Pass to `changes(after:)` to resume after this change.")
    at: datetime = strawberry.field(description="When it changed (UTC).")
    user: User | None = strawberry.field(description="The user as it is now.")


@strawberry.type
class SyncSubscription:
    @strawberry.subscription(description="Changes to one user, live.", permission_classes=AUTHENTICATED)
    async def user_changed(self, user_id: strawberry.ID) -> AsyncGenerator[UserChange, None]:
        raise not_yet("userChanged", 5)
        yield  # pragma: no cover

    @strawberry.subscription(
        description="Replays every change after the cursor, then follows live.",
        permission_classes=AUTHENTICATED,
    )
    async def changes(
        self, after: str | None = None, topics: list[str] | None = None
    ) -> AsyncGenerator[UserChange, None]:
        raise not_yet("changes", 5)
        yield  # pragma: no cover
