"""Who may do what: pure checks over a principal and the data at hand."""

from __future__ import annotations

from collections.abc import Iterable

from app.auth.principal import Principal, PrincipalKind, Role
from app.channels import identity_channel
from app.domain import IdentityKey, IdentityRecord
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
