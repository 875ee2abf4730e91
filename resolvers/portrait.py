"""Portrait resolvers: a person's product preferences, traits and journey across channels."""

from __future__ import annotations

from app.context import RequestContext
from app.domain import UserRecord
from app.domain.portrait import Journey, Preference, Traits
from app.errors import InvalidInput

MAX_PREFERENCES = 100


async def preferences(ctx: RequestContext, user: UserRecord, *, first: int | None) -> list[Preference]:
    """The person's top SKUs by decayed score."""
    size = 20 if first is None else first
    if not 0 <= size <= MAX_PREFERENCES:
        raise InvalidInput(f"first must be between 0 and {MAX_PREFERENCES}", field="first")
    return (await ctx.loaders.preferences_by_user_id.load(user.id))[:size]


async def traits(ctx: RequestContext, user: UserRecord) -> Traits:
    return await ctx.loaders.traits_by_user_id.load(user.id)


async def journey(ctx: RequestContext, user: UserRecord) -> Journey:
    return await ctx.loaders.journey_by_user_id.load(user.id)
