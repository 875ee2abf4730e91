"""Audience resolvers: who may read and change saved audiences; paging of their members."""

from __future__ import annotations

from typing import Any

from app.auth import policy
from app.auth.principal import PrincipalKind, Role
from app.context import RequestContext
from app.domain import UserRecord
from app.errors import Forbidden
from app.services.audiences import AudienceRecord, Audiences
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


async def members(
    ctx: RequestContext, condition: dict[str, Any], *, first: int | None, after: str | None, default: int
) -> UserPage:
    """Members in user id order, keyset-paged by id."""
    _reader(ctx)
    first = page_size(ctx, first, default=default)
    after_id = parse_id(after, "cursor") if after else None
    ids, total = await _service(ctx).members(condition, first=first, after_id=after_id)
    found = await ctx.loaders.user_by_id.load_many(ids[:first])
    nodes = [u for u in found if u is not None]
    return UserPage(
        nodes=nodes,
        has_next_page=len(ids) > first,
        end_cursor=str(nodes[-1].id) if nodes else None,
        total_count=total,
    )


async def preview(ctx: RequestContext, condition: dict[str, Any]) -> dict[str, Any]:
    """A condition checked (as saveAudience would) but not saved."""
    _reader(ctx)
    service = _service(ctx)
    service.parse(condition)
    return condition


async def of_user(ctx: RequestContext, user: UserRecord) -> list[str]:
    _reader(ctx)
    return await ctx.loaders.audiences_by_user_id.load(user.id)
