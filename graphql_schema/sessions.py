"""End-user sessions: the type sign-ins answer with, refreshing and ending one."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from app.context import RequestContext
from app.domain import UserRecord
from app.services.sessions import IssuedSession
from graphql_schema.identity import User
from resolvers import sessions as resolve

Ctx = Info[RequestContext, None]


@strawberry.type(description="An end-user session.")
class Session:
    token: str = strawberry.field(description="Send as 'Authorization: Bearer <token>'.")
    expires_at: datetime = strawberry.field(description="When the token stops working (UTC).")
    refresh_token: str = strawberry.field(
        description="Pass to refreshSession for a new token before or after it expires; good for one "
        "refresh (a used one presented again ends the session). Keep it secret."
    )
    refresh_expires_at: datetime = strawberry.field(description="When the refresh token stops working (UTC).")
    user: User = strawberry.field(description="The signed-in user.")

    @classmethod
    def of(cls, issued: IssuedSession, user: UserRecord) -> Session:
        return cls(
            token=issued.token,
            expires_at=issued.expires_at,
            refresh_token=issued.refresh_token,
            refresh_expires_at=issued.refresh_expires_at,
            user=User(record=user),
        )


@strawberry.type
class SessionMutation:
    @strawberry.mutation(
        description="A new session for a refresh token (the token, not an Authorization header, "
        "proves the caller); the refresh token is replaced by the answer's. Rate limited (login)."
    )
    async def refresh_session(self, info: Ctx, refresh_token: str) -> Session:
        issued, user = await resolve.refresh_session(info.context, refresh_token=refresh_token)
        return Session.of(issued, user)

    @strawberry.mutation(
        description="Sign out: end the session of a refresh token. False when the token is unknown."
    )
    async def revoke_session(self, info: Ctx, refresh_token: str) -> bool:
        return await resolve.revoke_session(info.context, refresh_token=refresh_token)
