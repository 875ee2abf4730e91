"""Real-time sync: the change feed's types and subscriptions (graphql-transport-ws at /graphql)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from strawberry.types import Info

from app.context import RequestContext
from app.domain.changes import ChangeRow
from graphql_schema.identity import User, user_of
from graphql_schema.permissions import AUTHENTICATED
from resolvers import sync as resolve

Ctx = Info[RequestContext, None]


@strawberry.type(description="One change to a user, from the outbox.")
class UserChange:
    row: strawberry.Private[ChangeRow]

    @strawberry.field(description="The user that changed (an absorbed user's own id in a MERGE).")
    def user_id(self) -> strawberry.ID:
        return strawberry.ID(str(self.row.user_id))

    @strawberry.field(
        description="What changed: IDENTITY, MERGE, CONSENT, MEMBERSHIP, ROLE, ORDER, CART, BEHAVIOR, "
        "RESERVATION, ERASURE, AUDIENCE"
    )
    def topic(self) -> str:
        return self.row.topic

    @strawberry.field(description="Pass to `changes(after:)` to resume after this change.")
    def cursor(self) -> str:
        return str(self.row.cursor)

    @strawberry.field(description="When it changed (UTC).")
    def at(self) -> datetime:
        return self.row.at

    @strawberry.field(description="The user as it is now, read when this change is delivered.")
    async def user(self, info: Ctx) -> User | None:
        return user_of(await info.context.loaders.user_by_id.load(self.row.user_id))


@strawberry.type
class SyncSubscription:
    @strawberry.subscription(
        description="Changes to one user, live (an end user: only themselves; a service: users of "
        "its channel). After a merge it follows the survivor.",
        permission_classes=AUTHENTICATED,
    )
    async def user_changed(self, info: Ctx, user_id: strawberry.ID) -> AsyncGenerator[UserChange, None]:
        async for row in resolve.user_changed(info.context, user_id=user_id):
            yield UserChange(row=row)

    @strawberry.subscription(
        description="Replays every change after the cursor, then follows live. Without `after`, "
        "from now. Topics filter (IDENTITY, MERGE, CONSENT, MEMBERSHIP, ROLE, ORDER, CART, BEHAVIOR, "
        "RESERVATION, ERASURE, AUDIENCE).",
        permission_classes=AUTHENTICATED,
    )
    async def changes(
        self, info: Ctx, after: str | None = None, topics: list[str] | None = None
    ) -> AsyncGenerator[UserChange, None]:
        async for row in resolve.changes(info.context, after=after, topics=topics):
            yield UserChange(row=row)
