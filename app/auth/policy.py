"""Who may do what: pure checks over a principal and the data at hand."""

from __future__ import annotations

from collections.abc import Iterable

from app.auth.principal import Principal, PrincipalKind, Role
from app.channels import identity_channel
from app.domain import Channel, IdentityKey, IdentityRecord
from app.errors import Forbidden
from app.settings import Settings


def require_kind(principal: Principal, *kinds: PrincipalKind) -> None:
    """Some operations belong to one kind of caller."""
    if principal.kind not in kinds:
        allowed = " or ".join(k.value for k in kinds)
        raise Forbidden(f"only a {allowed} may do this; you are a {principal.kind.value}")


def require_role(principal: Principal, role: Role) -> None:
    """Operator powers come from roles; other callers have none."""
    if not principal.has_role(role):
        raise Forbidden(f"this needs the operator role {role.value}")


def in_service_scope(
    principal: Principal, keys: Iterable[IdentityKey | IdentityRecord], settings: Settings
) -> bool:
    """A service acts on users holding an identity of its own channel."""
    return any(identity_channel(k.kind, k.namespace, settings) is principal.channel for k in keys)


def ensure_can_read_user(
    principal: Principal, user_id: int, identities: Iterable[IdentityRecord], settings: Settings
) -> None:
    """Operators read by role, services within their channel, end users only themselves."""
    if principal.kind is PrincipalKind.OPERATOR:
        require_role(principal, Role.VIEWER)
    elif principal.kind is PrincipalKind.END_USER:
        raise Forbidden("an end user may read only their own data (use `me`)")
    elif not in_service_scope(principal, identities, settings):
        raise Forbidden(f"user {user_id} holds no identity of channel {principal.channel}")


def ensure_can_change_links(
    principal: Principal,
    *,
    target: Iterable[IdentityRecord] | None,
    keys: Iterable[IdentityKey],
    settings: Settings,
) -> None:
    """Operators (role operator) may link anywhere; a service within its channel."""
    require_kind(principal, PrincipalKind.OPERATOR, PrincipalKind.SERVICE)
    if principal.kind is PrincipalKind.OPERATOR:
        require_role(principal, Role.OPERATOR)
        return
    if target is None:
        return
    if not (in_service_scope(principal, target, settings) or in_service_scope(principal, keys, settings)):
        raise Forbidden(
            f"a {principal.channel} service may change only users holding an identity of its channel"
        )


def _ensure_service_scope(
    principal: Principal,
    identities: Iterable[IdentityRecord],
    source_channels: Iterable[Channel],
    settings: Settings,
) -> None:
    """A service changes only users of its channel, and speaks only for what happened in its channel."""
    if not in_service_scope(principal, identities, settings):
        raise Forbidden(
            f"a {principal.channel} service may change only users holding an identity of its channel"
        )
    others = sorted({c.value for c in source_channels if c is not principal.channel})
    if others:
        raise Forbidden(
            f"a {principal.channel} service records only what happened in {principal.channel}, not {others}"
        )


def ensure_can_set_consent(
    principal: Principal,
    *,
    is_self: bool,
    identities: Iterable[IdentityRecord],
    grants: bool,
    source_channels: Iterable[Channel],
    settings: Settings,
) -> None:
    """The user sets their own; a service records them in its channel; an operator only withdraws.

    Only the person can agree: an operator acting for a user (customer service) may record a
    withdrawal, never a grant.
    """
    if principal.kind is PrincipalKind.END_USER:
        if not is_self:
            raise Forbidden("an end user may set only their own consents")
    elif principal.kind is PrincipalKind.SERVICE:
        _ensure_service_scope(principal, identities, source_channels, settings)
    else:
        if grants:
            raise Forbidden("operators cannot grant consent on a user's behalf; only withdraw it")
        require_role(principal, Role.OPERATOR)


def ensure_can_change_membership(
    principal: Principal, *, identities: Iterable[IdentityRecord], source_channel: Channel, settings: Settings
) -> None:
    """Memberships and points: the channel's service for its own channel, or an operator."""
    require_kind(principal, PrincipalKind.OPERATOR, PrincipalKind.SERVICE)
    if principal.kind is PrincipalKind.OPERATOR:
        require_role(principal, Role.OPERATOR)
        return
    _ensure_service_scope(principal, identities, [source_channel], settings)


def ensure_can_grant_roles(principal: Principal) -> None:
    """Staff roles are granted centrally, by admins."""
    require_kind(principal, PrincipalKind.OPERATOR)
    require_role(principal, Role.ADMIN)


def ensure_can_read_audit(principal: Principal) -> None:
    """The audit log names staff and what they did: admins only."""
    require_kind(principal, PrincipalKind.OPERATOR)
    require_role(principal, Role.ADMIN)


def ensure_can_read_jobs(principal: Principal) -> None:
    """Failed background jobs carry people's ids and WeChat's answers: admins only."""
    require_kind(principal, PrincipalKind.OPERATOR)
    require_role(principal, Role.ADMIN)


def ensure_can_exercise_rights(principal: Principal, *, is_self: bool) -> None:
    """Export and erasure (PIPL): the person themselves, or an admin; no service, no other user."""
    if principal.kind is PrincipalKind.END_USER:
        if not is_self:
            raise Forbidden("an end user may export or erase only their own data")
        return
    require_kind(principal, PrincipalKind.OPERATOR)
    require_role(principal, Role.ADMIN)
