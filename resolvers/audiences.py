"""Audience resolvers: who may read and change saved audiences; paging of their members."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from app.auth import policy
from app.auth.principal import PrincipalKind, Role
from app.channels import appid_channels
from app.context import RequestContext
from app.domain import Channel, IdentityKind, UserRecord
from app.domain.entitlements import Purpose
from app.errors import Forbidden, InvalidInput
from app.services.audiences import EVENTS_PAGE, AudienceRecord, Audiences, EventRow
from app.services.changes import Topic
from resolvers.identity import UserPage, parse_id
from resolvers.paging import page_size


def _service(ctx: RequestContext) -> Audiences:
    return Audiences(ctx.db, ctx.dictionary, ctx.settings)


def _reader(ctx: RequestContext) -> None:
    """Operators read audiences (viewer and up); services and end users do not."""
    if ctx.principal.kind is not PrincipalKind.OPERATOR:
        raise Forbidden("audiences are for operators")
    policy.require_role(ctx.principal, Role.VIEWER)


def _writer(ctx: RequestContext) -> None:
    _reader(ctx)
    policy.require_role(ctx.principal, Role.OPERATOR)


async def audience(ctx: RequestContext, name: str) -> AudienceRecord | None:
    _reader(ctx)
    async with ctx.read() as session:
        return await _service(ctx).get(session, name)


async def audiences(ctx: RequestContext) -> list[AudienceRecord]:
    _reader(ctx)
    async with ctx.read() as session:
        return await _service(ctx).all(session)


async def save(ctx: RequestContext, *, name: str, condition: Any, description: str | None) -> AudienceRecord:
    _writer(ctx)
    service = _service(ctx)
    actor = ctx.principal.actor
    return await ctx.write(
        lambda s: service.save(s, name=name, condition=condition, description=description, actor=actor)
    )


async def delete(ctx: RequestContext, *, name: str) -> bool:
    _writer(ctx)
    service = _service(ctx)
    return await ctx.write(lambda s: service.delete(s, name=name, actor=ctx.principal.actor))


async def size(ctx: RequestContext, condition: dict[str, Any]) -> int:
    _reader(ctx)
    return await _service(ctx).size(condition)


async def kept_size(ctx: RequestContext, audience_id: int) -> int:
    """A saved audience's size, from its kept membership."""
    _reader(ctx)
    return await _service(ctx).kept_size(audience_id)


async def members(
    ctx: RequestContext,
    condition: dict[str, Any],
    *,
    first: int | None,
    after: str | None,
    default: int,
    saved_id: int | None = None,
) -> UserPage:
    """Members in user id order, keyset-paged by id: a saved audience's kept ones, a preview's evaluated."""
    _reader(ctx)
    first = page_size(ctx, first, default=default)
    after_id = parse_id(after, "cursor") if after else None
    if saved_id is not None:
        ids, total = await _service(ctx).kept_members(saved_id, first=first, after_id=after_id)
    else:
        ids, total = await _service(ctx).members(condition, first=first, after_id=after_id)
    found = await ctx.loaders.user_by_id.load_many(ids[:first])
    nodes = [u for u in found if u is not None]
    return UserPage(
        nodes=nodes,
        has_next_page=len(ids) > first,
        end_cursor=str(nodes[-1].id) if nodes else None,
        total_count=total,
    )


@dataclass(frozen=True, slots=True)
class RecipientView:
    user_id: int
    openid: str | None
    unionid: str | None
    app_user_id: str | None


@dataclass(frozen=True, slots=True)
class RecipientPage:
    nodes: list[RecipientView]
    has_next_page: bool
    end_cursor: str | None
    total_count: int
    excluded: dict[str, int]


async def recipients(
    ctx: RequestContext,
    condition: dict[str, Any],
    *,
    channel: Channel,
    purpose: Purpose,
    first: int | None,
    after: str | None,
) -> RecipientPage:
    """Who can be reached in `channel` for `purpose`, with the id to send to."""
    _reader(ctx)
    first = page_size(ctx, first, default=1000)
    after_id = parse_id(after, "cursor") if after else None
    found = await _service(ctx).recipients(
        condition, channel=channel, purpose=purpose, first=first, after_id=after_id
    )
    ids = found.user_ids[:first]
    held = await ctx.loaders.identities_by_user_id.load_many(ids)
    appid = {c: a for a, c in appid_channels(ctx.settings).items()}.get(channel)
    nodes = []
    for uid, identities in zip(ids, held, strict=True):
        by_kind = {(i.kind, i.namespace): i.value for i in identities}
        nodes.append(
            RecipientView(
                user_id=uid,
                openid=by_kind.get((IdentityKind.OPENID, appid or ""))
                if channel is not Channel.APP
                else None,
                unionid=next((i.value for i in identities if i.kind is IdentityKind.UNIONID), None),
                app_user_id=next((i.value for i in identities if i.kind is IdentityKind.APP_USER_ID), None)
                if channel is Channel.APP
                else None,
            )
        )
    return RecipientPage(
        nodes=nodes,
        has_next_page=len(found.user_ids) > first,
        end_cursor=str(ids[-1]) if ids else None,
        total_count=found.total,
        excluded=found.excluded,
    )


async def preview(ctx: RequestContext, condition: dict[str, Any]) -> dict[str, Any]:
    """A condition checked (as saveAudience would) but not saved."""
    _reader(ctx)
    service = _service(ctx)
    service.parse(condition)
    return condition


async def of_user(ctx: RequestContext, user: UserRecord) -> list[str]:
    _reader(ctx)
    # Kept membership moves a moment after the change that moved it, and with saves and
    # deletions, which this user's version does not follow.
    ctx.uncacheable()
    return await ctx.loaders.audiences_by_user_id.load(user.id)


async def changed(ctx: RequestContext, name: str) -> AsyncIterator[tuple[str, EventRow]]:
    """A saved audience's entries and exits from now on, as the membership follower records them.

    The follower writes them in the transaction that appends AUDIENCE rows to the outbox, so an
    AUDIENCE row delivered by the feed means they can be read; rows the feed had delivered before a
    read are covered by it, and are skipped."""
    _reader(ctx)
    service = _service(ctx)
    async with ctx.read() as session:
        found = await service.get(session, name)
    if found is None:
        raise InvalidInput(f"no saved audience named {name!r}", field="name")
    async with ctx.feed.listen(None) as listener:
        # The feed's position first, then the newest event: an entry committed between the two
        # reads is either in `seen_event` (already past) or behind a change after `covered`, never
        # skipped as covered while still unread.
        covered = ctx.feed.last
        seen_event = await service.last_event()
        async for change in listener.follow(covered):
            if change.topic != Topic.AUDIENCE or change.cursor <= covered:
                continue
            while True:
                covered = ctx.feed.last
                events = await service.events_after(found.id, seen_event)
                for event in events:
                    seen_event = event.id
                    yield found.name, event
                if len(events) < EVENTS_PAGE:
                    break
