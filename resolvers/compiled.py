"""Roots of compiled reads: the same checks as the identity resolvers, with every relation of the
operation read up front (loaders/compiled.py), so that the fields' own resolvers ask nothing more."""

from __future__ import annotations

from app.auth import policy
from app.auth.principal import PrincipalKind, Role
from app.context import RequestContext
from app.domain import IdentityKind, UserRecord
from app.errors import InvalidInput
from loaders.compiled import Found, Reads, Rows, prefetch
from resolvers import identity as resolve
from resolvers.identity import UserPage, parse_id, user_page
from resolvers.paging import page_size


def _own_id(ctx: RequestContext) -> list[int]:
    """An end user's reads also look up their own user (`_readable` compares the two)."""
    principal = ctx.principal
    if principal.kind is PrincipalKind.END_USER and principal.user_id is not None:
        return [principal.user_id]
    return []


def _keep(kept: list[Rows] | None, found: Found) -> None:
    if kept is not None and found.rows is not None:
        kept.append(found.rows)


async def me(ctx: RequestContext, reads: Reads, kept: list[Rows] | None = None) -> UserRecord | None:
    """As `resolvers.identity.me`; `kept` receives a direct read's rows."""
    own = _own_id(ctx)
    if own:
        _keep(kept, await prefetch(ctx.loaders, reads, ids=own))
    return await resolve.me(ctx)


async def user(
    ctx: RequestContext,
    reads: Reads,
    *,
    user_id: str | None,
    identity: tuple[IdentityKind, str, str | None] | None,
    kept: list[Rows] | None = None,
) -> UserRecord | None:
    """As `resolvers.identity.user`: by id (its survivor) or by any linked identity."""
    if (user_id is None) == (identity is None):
        raise InvalidInput("give exactly one of `id` and `identity`")
    if user_id is not None:
        _keep(kept, await prefetch(ctx.loaders, reads, ids=[parse_id(user_id), *_own_id(ctx)]))
        return await resolve.user(ctx, user_id=user_id, identity=None)
    assert identity is not None
    ctx.uncacheable()  # who owns an identity is not part of any one user's version
    key = resolve.key_of(ctx, *identity)
    found = await prefetch(ctx.loaders, reads, key=key, ids=_own_id(ctx))
    _keep(kept, found)
    owner = None if found.owner is None else await ctx.loaders.user_by_id.load(found.owner)
    return await resolve.readable(ctx, owner)


async def users(
    ctx: RequestContext, reads: Reads, *, first: int, after: str | None, kept: list[Rows] | None = None
) -> UserPage:
    """As `resolvers.identity.users`, the page and its count read with the users' relations."""
    policy.require_role(ctx.principal, Role.VIEWER)
    first = page_size(ctx, first, default=20)
    after_id = parse_id(after, "cursor") if after else None
    found = await prefetch(ctx.loaders, reads, page=(first + 1, after_id))
    _keep(kept, found)
    return user_page(found.page, first, found.total)
