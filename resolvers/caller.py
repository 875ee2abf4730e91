"""Who is calling, and what that caller may do: pages (the operator console) ask before offering."""

from __future__ import annotations

from dataclasses import dataclass

from app.auth.principal import PrincipalKind, Role, expand_roles
from app.context import RequestContext
from app.domain import Channel


@dataclass(frozen=True)
class CallerView:
    kind: str
    actor: str
    roles: list[str]
    channel: Channel | None
    reads_pii: bool
    may_unmerge: bool


def caller(ctx: RequestContext) -> CallerView:
    """The same checks the operations make (app/auth/policy.py), answered ahead of time."""
    principal = ctx.principal
    roles = (
        sorted(r.value for r in expand_roles(principal.roles))
        if principal.kind is PrincipalKind.OPERATOR
        else []
    )
    return CallerView(
        kind=principal.kind.value,
        actor=principal.actor,
        roles=roles,
        channel=principal.channel,
        reads_pii=principal.can_read_pii,
        may_unmerge=principal.has_role(Role.OPERATOR),
    )
