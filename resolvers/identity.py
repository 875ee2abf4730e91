"""Identity resolvers: arguments in, an auth check and a service call, records out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from app.auth import policy
from app.auth.principal import PrincipalKind, Role
from app.channels import identity_channel
from app.context import RequestContext
from app.domain import (
    Channel,
    IdentityKey,
    IdentityKind,
    IdentityRecord,
    LinkOutcome,
    MergeRecord,
    UserRecord,
)
from app.errors import Forbidden, InvalidInput
from app.phones import mask_phone
from app.services import users as users_service
from app.services.identity import IdentityGraph
from app.services.identity_rules import LinkRequest, make_key
from resolvers.paging import page_size


@dataclass(frozen=True)
class IdentityView:
    """An identity as this caller may see it."""

    kind: IdentityKind
    value: str
    namespace: str | None
    channel: Channel | None
    verified: bool
    linked_at: datetime
    linked_by: str


@dataclass(frozen=True)
class EdgeView:
    """A history entry as this caller may see it."""

    action: str
    kind: IdentityKind
    namespace: str | None
    value: str
    rule: str
    source: str
    actor: str
    at: datetime
    user_id: int
    merge_id: int | None


@dataclass(frozen=True)
class UserPage:
    nodes: list[UserRecord]
    has_next_page: bool
    end_cursor: str | None
    total_count: int


def parse_id(raw: str, what: str = "user") -> int:
    """IDs are integers inside; anything else is the caller's mistake."""
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"{raw!r} is not a {what} id", field="id") from None
    if value <= 0:
        raise InvalidInput(f"{raw!r} is not a {what} id", field="id")
    return value


def key_of(ctx: RequestContext, kind: IdentityKind, value: str, namespace: str | None) -> IdentityKey:
    """Normalize with this deployment's phone region."""
    return make_key(kind, value, namespace, phone_region=ctx.settings.phone_default_region)


async def readable(ctx: RequestContext, user: UserRecord | None) -> UserRecord | None:
    """`user` if the caller may read it; an end user's own id may have been merged away."""
    if ctx.principal.kind is PrincipalKind.END_USER:
        return readable_as(ctx, user, own=await me(ctx), identities=())
    identities = () if user is None else await ctx.loaders.identities_by_user_id.load(user.id)
    return readable_as(ctx, user, own=None, identities=identities)


def readable_as(
    ctx: RequestContext,
    user: UserRecord | None,
    *,
    own: UserRecord | None,
    identities: Iterable[IdentityRecord],
) -> UserRecord | None:
    """`readable`'s rule once the end user's own user (`me`) and the user's identities are known."""
    principal = ctx.principal
    if principal.kind is PrincipalKind.END_USER:
        if user is None or own is None or own.id != user.id:
            raise Forbidden("an end user may read only their own data (use `me`)")
        return user
    if user is not None:
        policy.ensure_can_read_user(principal, user.id, identities, ctx.settings)
    return user


async def me(ctx: RequestContext) -> UserRecord | None:
    """Only an end user has a `me`; absorbed ids resolve to the survivor."""
    if not has_me(ctx):
        return None
    assert ctx.principal.user_id is not None
    found = await ctx.loaders.user_by_id.load(ctx.principal.user_id)
    ctx.depends_on(found)
    return found


def has_me(ctx: RequestContext) -> bool:
    """Whether the caller is an end user with a user of their own (else `me` is null, uncached)."""
    principal = ctx.principal
    if principal.kind is not PrincipalKind.END_USER or principal.user_id is None:
        ctx.uncacheable()
        return False
    return True


async def user(
    ctx: RequestContext,
    *,
    user_id: str | None,
    identity: tuple[IdentityKind, str, str | None] | None,
) -> UserRecord | None:
    """By id (an absorbed id answers with its survivor) or by any linked identity."""
    if (user_id is None) == (identity is None):
        raise InvalidInput("give exactly one of `id` and `identity`")
    if user_id is not None:
        found = await ctx.loaders.user_by_id.load(parse_id(user_id))
        ctx.depends_on(found)
    else:
        assert identity is not None
        ctx.uncacheable()  # who owns an identity is not part of any one user's version
        key = key_of(ctx, *identity)
        async with ctx.read() as session:
            owner = await users_service.owner_of(session, key)
        found = None if owner is None else await ctx.loaders.user_by_id.load(owner)
    return await readable(ctx, found)


async def users(ctx: RequestContext, *, first: int, after: str | None) -> UserPage:
    """Active users by id, for operators."""
    policy.require_role(ctx.principal, Role.VIEWER)
    first = page_size(ctx, first, default=20)
    after_id = parse_id(after, "cursor") if after else None
    async with ctx.read() as session:
        rows, total = await users_service.active_users(session, first=first, after_id=after_id)
    return user_page(rows, first, total)


def user_page(rows: list[UserRecord], first: int, total: int) -> UserPage:
    """A page of users from one row more than asked (which tells if another page follows)."""
    nodes = rows[:first]
    return UserPage(
        nodes=nodes,
        has_next_page=len(rows) > first,
        end_cursor=str(nodes[-1].id) if nodes else None,
        total_count=total,
    )


async def _shows_pii(ctx: RequestContext, user: UserRecord, kinds: list[IdentityKind], field: str) -> bool:
    """Whether this answer shows PII unmasked: the caller may read it and there is some to show
    (then the read is audited and the answer never cached)."""
    if not ctx.principal.can_read_pii:
        return False
    if IdentityKind.PHONE in kinds:
        await ctx.reveal_pii(user.id, field)
    return True


async def identities(ctx: RequestContext, user: UserRecord) -> list[IdentityView]:
    """Identities as this caller may see them (phones masked without pii_reader)."""
    held = await ctx.loaders.identities_by_user_id.load(user.id)
    pii = await _shows_pii(ctx, user, [i.kind for i in held], "identities")
    return [
        IdentityView(
            kind=i.kind,
            value=i.value if pii or i.kind is not IdentityKind.PHONE else mask_phone(i.value),
            namespace=i.namespace or None,
            channel=identity_channel(i.kind, i.namespace, ctx.settings),
            verified=i.verified,
            linked_at=i.linked_at,
            linked_by=i.linked_by,
        )
        for i in held
    ]


async def identity_history(ctx: RequestContext, user: UserRecord) -> list[EdgeView]:
    """Operators see why each identity is (or was) linked; it names staff, so end users do not."""
    policy.require_role(ctx.principal, Role.VIEWER)
    edges = await ctx.loaders.identity_edges_by_user_id.load(user.id)
    pii = await _shows_pii(ctx, user, [e.kind for e in edges], "identityHistory")
    return [
        EdgeView(
            action=e.action,
            kind=e.kind,
            namespace=e.namespace or None,
            value=e.value if pii or e.kind is not IdentityKind.PHONE else mask_phone(e.value),
            rule=e.rule,
            source=e.source,
            actor=e.actor,
            at=e.at,
            user_id=e.user_id,
            merge_id=e.merge_id,
        )
        for e in edges
    ]


async def merges(ctx: RequestContext, user: UserRecord) -> list[MergeRecord]:
    """Operators see which merges made this person, and which were undone."""
    policy.require_role(ctx.principal, Role.VIEWER)
    return await ctx.loaders.merges_by_user_id.load(user.id)


async def phone(ctx: RequestContext, user: UserRecord) -> str | None:
    """The user's phone as this caller may see it."""
    found = [i for i in await ctx.loaders.identities_by_user_id.load(user.id) if i.kind is IdentityKind.PHONE]
    if not found:
        return None
    pii = await _shows_pii(ctx, user, [IdentityKind.PHONE], "phone")
    return found[0].value if pii else mask_phone(found[0].value)


async def _target_identities(ctx: RequestContext, user_id: int) -> list[IdentityRecord] | None:
    found = await ctx.loaders.user_by_id.load(user_id)
    return None if found is None else await ctx.loaders.identities_by_user_id.load(found.id)


async def link_identity(
    ctx: RequestContext,
    *,
    user_id: str | None,
    identity: tuple[IdentityKind, str, str | None],
    unionid: str | None,
    dry_run: bool,
    source: str | None,
) -> LinkOutcome:
    """Authorize, then link in one write transaction."""
    principal = ctx.principal
    keys = [key_of(ctx, *identity)]
    if unionid is not None:
        if keys[0].kind is not IdentityKind.OPENID:
            raise InvalidInput("`unionid` comes only with an OPENID", field="unionid")
        keys.append(key_of(ctx, IdentityKind.UNIONID, unionid, None))
    target_id = parse_id(user_id) if user_id is not None else None
    target = await _target_identities(ctx, target_id) if target_id is not None else None
    policy.ensure_can_change_links(principal, target=target, keys=keys, settings=ctx.settings)
    request = LinkRequest(
        keys=keys,
        user_id=target_id,
        actor=principal.actor,
        rule="unionid" if unionid else "asserted",
        source=(source or f"linkIdentity by {principal.actor}")[:200],
        dry_run=dry_run,
    )
    return await ctx.write(lambda session: IdentityGraph(session).link(request))


async def unlink_identity(
    ctx: RequestContext, *, user_id: str, identity: tuple[IdentityKind, str, str | None]
) -> UserRecord:
    """Authorize, then unlink in one write transaction."""
    principal = ctx.principal
    key = key_of(ctx, *identity)
    target_id = parse_id(user_id)
    target = await _target_identities(ctx, target_id)
    policy.ensure_can_change_links(principal, target=target or [], keys=[], settings=ctx.settings)
    return await ctx.write(
        lambda session: IdentityGraph(session).unlink(user_id=target_id, key=key, actor=principal.actor)
    )


async def unmerge(ctx: RequestContext, *, merge_id: str) -> list[UserRecord]:
    """Operators only: undoing a merge is a correction, not a channel's call."""
    principal = ctx.principal
    policy.require_kind(principal, PrincipalKind.OPERATOR)
    policy.require_role(principal, Role.OPERATOR)
    survivor, restored = await ctx.write(
        lambda session: IdentityGraph(session).unmerge(
            merge_id=parse_id(merge_id, "merge"), actor=principal.actor
        )
    )
    return [survivor, restored]
