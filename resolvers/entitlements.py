"""Permission-center resolvers: arguments in, an auth check and a service call, records out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.auth import policy
from app.auth.principal import PrincipalKind
from app.channels import channel_identities
from app.context import RequestContext
from app.db.types import utcnow
from app.domain import Channel, UserRecord
from app.domain.entitlements import ConsentChange, ConsentEntryRecord, MembershipRecord, Purpose
from app.entitlements.catalogue import Benefit, Catalogue, catalogue_for
from app.errors import Forbidden, InvalidInput
from app.services import consents as consent_rules
from app.services import memberships as membership_rules
from app.services import roles as role_rules
from app.services.consents import ConsentLedger
from app.services.memberships import Memberships
from app.services.roles import StaffRoles
from app.services.users import user_not_found
from resolvers.identity import me, parse_id

PERMISSION_MAX = 128


@dataclass(frozen=True)
class RoleView:
    """A grant with what its role allows today, from the catalogue."""

    role: str
    scope: str | None
    permissions: tuple[str, ...]
    granted_at: datetime


def catalogue(ctx: RequestContext) -> Catalogue:
    return catalogue_for(ctx.settings)


async def _target(ctx: RequestContext, user_id: str | None) -> UserRecord:
    """The user a change is for: an end user's own by default; others must name one."""
    principal = ctx.principal
    if user_id is None:
        if principal.kind is not PrincipalKind.END_USER:
            raise InvalidInput("name the user: `userId`", field="userId")
        own = await me(ctx)
        if own is None:
            raise user_not_found(principal.user_id or 0)
        return own
    found = await ctx.loaders.user_by_id.load(parse_id(user_id))
    if found is None:
        if principal.kind is PrincipalKind.END_USER:
            raise Forbidden("an end user may change only their own data")
        raise user_not_found(int(user_id))
    return found


async def _is_self(ctx: RequestContext, user: UserRecord) -> bool:
    own = await me(ctx)
    return own is not None and own.id == user.id


async def set_consents(
    ctx: RequestContext, *, user_ids: Sequence[str | None], changes: Sequence[ConsentChange]
) -> UserRecord:
    """Authorize, then record every change in one write transaction."""
    if len(set(user_ids)) > 1:
        raise InvalidInput("one call sets the consents of one user", field="userId")
    done = await _set_at_once(ctx, user_ids[0] if user_ids else None, changes)
    if done is not None:
        return done
    target = await _target(ctx, user_ids[0] if user_ids else None)
    principal = ctx.principal
    policy.ensure_can_set_consent(
        principal,
        is_self=await _is_self(ctx, target),
        identities=await ctx.loaders.identities_by_user_id.load(target.id),
        grants=any(c.granted for c in changes),
        source_channels=[c.source_channel for c in changes],
        settings=ctx.settings,
    )
    return await ctx.write(
        lambda session: ConsentLedger(session).set(target.id, changes, actor=principal.actor)
    )


async def _set_at_once(
    ctx: RequestContext, user_id: str | None, changes: Sequence[ConsentChange]
) -> UserRecord | None:
    """The common calls, a service in its channel or an end user for themselves, as one statement
    that checks the service's scope itself (policy.ensure_can_set_consent's rule). None: nothing
    was written, and the long way decides (a merged user, a refusal and why, SQLite)."""
    principal = ctx.principal
    if principal.kind is PrincipalKind.SERVICE and principal.channel is not None and user_id is not None:
        if any(c.source_channel is not principal.channel for c in changes):
            return None
        target, scope = parse_id(user_id), channel_identities(principal.channel, ctx.settings)
    elif principal.kind is PrincipalKind.END_USER and principal.user_id is not None:
        target, scope = principal.user_id, None
        if user_id is not None and parse_id(user_id) != target:
            return None
    else:
        return None
    return await ctx.write_at_once(
        lambda conn: consent_rules.set_at_once(
            conn, target, changes, actor=principal.actor, trace_id=ctx.trace_id, scope=scope
        )
    )


async def consents(ctx: RequestContext, user: UserRecord, *, at: datetime | None) -> list[ConsentEntryRecord]:
    """The settings in force now, or at `at` (from the user's own ledger)."""
    if at is None:
        return consent_rules.settings_of(await ctx.loaders.consents_by_user_id.load(user.id))
    if at.tzinfo is None:
        raise InvalidInput("`at` needs a time zone offset", field="at")
    ledger = await ctx.loaders.consent_entries_by_user_id.load(user.id)
    return consent_rules.in_force_at([e for e in ledger if e.user_id == user.id], at)


async def allows(ctx: RequestContext, user: UserRecord, *, purpose: Purpose, channel: Channel) -> bool:
    current = await ctx.loaders.consents_by_user_id.load(user.id)
    return consent_rules.allows(current, purpose, channel)


async def consent_history(
    ctx: RequestContext, user: UserRecord, *, purpose: Purpose | None
) -> list[ConsentEntryRecord]:
    """The ledger of this user and of the users merged into it, oldest first."""
    ledger = await ctx.loaders.consent_entries_by_user_id.load(user.id)
    return [e for e in ledger if purpose is None or e.purpose is purpose]


async def _memberships(ctx: RequestContext, user: UserRecord) -> tuple[list[MembershipRecord], datetime]:
    """The person's memberships and the moment they are judged at; the answer lasts until the next expiry."""
    found = await ctx.loaders.memberships_by_user_id.load(user.id)
    now = utcnow()
    expiry = membership_rules.next_expiry(found, catalogue(ctx), now)
    if expiry is not None:
        ctx.expires(expiry)
    return found, now


async def membership(ctx: RequestContext, user: UserRecord) -> MembershipRecord | None:
    found, now = await _memberships(ctx, user)
    return membership_rules.highest(found, catalogue(ctx), now)


async def benefits(ctx: RequestContext, user: UserRecord) -> list[Benefit]:
    found, now = await _memberships(ctx, user)
    return membership_rules.benefits(found, catalogue(ctx), now)


async def points(ctx: RequestContext, user_id: int) -> int:
    return await ctx.loaders.points_by_user_id.load(user_id)


async def _membership_target(ctx: RequestContext, user_id: str, source_channel: Channel) -> UserRecord:
    target = await _target(ctx, user_id)
    policy.ensure_can_change_membership(
        ctx.principal,
        identities=await ctx.loaders.identities_by_user_id.load(target.id),
        source_channel=source_channel,
        settings=ctx.settings,
    )
    return target


async def grant_membership(
    ctx: RequestContext, *, user_id: str, tier: str, source_channel: Channel, expires_at: datetime | None
) -> UserRecord:
    target = await _membership_target(ctx, user_id, source_channel)
    return await ctx.write(
        lambda session: Memberships(session, catalogue(ctx)).grant(
            target.id,
            tier=tier,
            source_channel=source_channel,
            expires_at=expires_at,
            actor=ctx.principal.actor,
        )
    )


async def revoke_membership(
    ctx: RequestContext, *, user_id: str, source_channel: Channel, reason: str | None
) -> UserRecord:
    target = await _membership_target(ctx, user_id, source_channel)
    return await ctx.write(
        lambda session: Memberships(session, catalogue(ctx)).revoke(
            target.id, source_channel=source_channel, reason=reason, actor=ctx.principal.actor
        )
    )


async def adjust_points(
    ctx: RequestContext, *, user_id: str, delta: int, reason: str, source_channel: Channel
) -> UserRecord:
    target = await _membership_target(ctx, user_id, source_channel)
    return await ctx.write(
        lambda session: Memberships(session, catalogue(ctx)).adjust_points(
            target.id, delta=delta, reason=reason, source_channel=source_channel, actor=ctx.principal.actor
        )
    )


async def roles(ctx: RequestContext, user: UserRecord) -> list[RoleView]:
    cat = catalogue(ctx)
    grants = role_rules.dedupe(await ctx.loaders.role_grants_by_user_id.load(user.id))
    views = []
    for g in grants:
        role = cat.role(g.role)
        views.append(
            RoleView(
                role=g.role,
                scope=g.scope,
                permissions=role.permissions if role else (),
                granted_at=g.granted_at,
            )
        )
    return views


async def has_permission(
    ctx: RequestContext, user: UserRecord, *, permission: str, scope: str | None
) -> bool:
    if not permission or len(permission) > PERMISSION_MAX:
        raise InvalidInput(f"`permission` must be 1 to {PERMISSION_MAX} characters", field="permission")
    grants = await ctx.loaders.role_grants_by_user_id.load(user.id)
    return role_rules.has_permission(grants, catalogue(ctx), permission, scope or None)


async def grant_role(ctx: RequestContext, *, user_id: str, role: str, scope: str | None) -> UserRecord:
    policy.ensure_can_grant_roles(ctx.principal)
    target = await _target(ctx, user_id)
    return await ctx.write(
        lambda session: StaffRoles(session, catalogue(ctx)).grant(
            target.id, role=role, scope=scope, actor=ctx.principal.actor
        )
    )


async def revoke_role(ctx: RequestContext, *, user_id: str, role: str, scope: str | None) -> UserRecord:
    policy.ensure_can_grant_roles(ctx.principal)
    target = await _target(ctx, user_id)
    return await ctx.write(
        lambda session: StaffRoles(session, catalogue(ctx)).revoke(
            target.id, role=role, scope=scope, actor=ctx.principal.actor
        )
    )
