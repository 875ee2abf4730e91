"""Session resolvers: refresh a session with its refresh token, or end it."""

from __future__ import annotations

from app.context import RequestContext
from app.domain import UserRecord
from app.errors import Unauthenticated
from app.services import sessions
from app.services.sessions import IssuedSession, Refused


async def refresh_session(ctx: RequestContext, *, refresh_token: str) -> tuple[IssuedSession, UserRecord]:
    """The refresh token is the credential: no Authorization header is needed (the access token
    has usually expired)."""
    outcome = await ctx.write(lambda session: sessions.refresh(session, refresh_token, ctx.settings))
    if isinstance(outcome, Refused):  # committed: a replayed token's family stays revoked
        raise Unauthenticated(outcome.reason)
    user = await ctx.loaders.user_by_id.load(outcome.user_id)
    if user is None:
        raise Unauthenticated("the session's user no longer exists")
    return outcome, user


async def revoke_session(ctx: RequestContext, *, refresh_token: str) -> bool:
    """Sign-out, by whoever holds the refresh token."""
    return await ctx.write(lambda session: sessions.revoke(session, refresh_token))
