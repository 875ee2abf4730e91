"""Subscription resolvers: who may follow what, from which cursor; changes out, one at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from app.auth import policy
from app.auth.principal import PrincipalKind, Role
from app.context import RequestContext
from app.domain.changes import ChangeRow
from app.errors import DomainError, InvalidInput
from app.services.changes import Topic
from resolvers import identity as identities


def parse_cursor(raw: str) -> int:
    """Cursors are the outbox's numbers, as strings."""
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{raw!r} is not a change cursor", field="after") from None
    if value < 0:
        raise InvalidInput(f"{raw!r} is not a change cursor", field="after")
    return value


def parse_topics(raw: Sequence[str] | None) -> frozenset[str] | None:
    if raw is None:
        return None
    known = {t.value for t in Topic}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InvalidInput(f"unknown topics {unknown}; known: {sorted(known)}", field="topics")
    return frozenset(raw)


async def user_changed(ctx: RequestContext, *, user_id: str) -> AsyncIterator[ChangeRow]:
    """Live changes of one user the caller may read, following it into a merge's survivor."""
    requested = identities.parse_id(user_id)
    found = await identities.user(ctx, user_id=user_id, identity=None)  # FORBIDDEN if not readable
    watched = {requested} | ({found.id} if found else set())
    async with ctx.feed.listen(watched) as listener:
        async for change in listener.follow(ctx.feed.last):  # from what this instance has seen
            ctx.refresh()  # every event is read with fresh loaders
            if change.topic == Topic.MERGE:
                survivor = await ctx.loaders.user_by_id.load(requested)
                listener.watch({requested} | ({survivor.id} if survivor else set()))
            yield change


async def changes(
    ctx: RequestContext, *, after: str | None, topics: Sequence[str] | None
) -> AsyncIterator[ChangeRow]:
    """Every change after `after` (else from now) the caller may see (operators: all; services:
    their channel's users; end users: their own), then live; no gap, no duplicate at the seam."""
    principal = ctx.principal
    wanted = parse_topics(topics)
    own: set[int] | None = None
    if principal.kind is PrincipalKind.OPERATOR:
        policy.require_role(principal, Role.VIEWER)
    elif principal.kind is PrincipalKind.END_USER:
        me = await identities.me(ctx)
        own = {principal.user_id or 0} | ({me.id} if me else set())
    start = None if after is None else await _start(ctx, after)
    async with ctx.feed.listen(own) as listener:
        async for change in listener.follow(ctx.feed.last if start is None else start):
            if wanted is not None and change.topic not in wanted:
                continue
            ctx.refresh()
            if principal.kind is PrincipalKind.SERVICE and not await _in_channel(ctx, change.user_id):
                continue
            yield change


async def _start(ctx: RequestContext, after: str) -> int:
    """The cursor to follow from; one the outbox no longer holds is CURSOR_EXPIRED."""
    cursor = parse_cursor(after)
    first = await ctx.feed.first_cursor()
    if first is not None and cursor < first - 1:
        raise DomainError(
            f"changes after {cursor} are no longer kept (the oldest kept is {first}); "
            "read the users again, then follow from a recent cursor",
            code="CURSOR_EXPIRED",
            oldest=str(first),
        )
    return cursor


async def _in_channel(ctx: RequestContext, user_id: int) -> bool:
    """A service follows the users holding an identity of its channel (as it reads them)."""
    user = await ctx.loaders.user_by_id.load(user_id)
    if user is None:
        return False
    held = await ctx.loaders.identities_by_user_id.load(user.id)
    return policy.in_service_scope(ctx.principal, held, ctx.settings)
