"""Who is calling: a channel service, an operator or an end user."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

from app.domain import Channel


class PrincipalKind(StrEnum):
    SERVICE = "service"
    OPERATOR = "operator"
    END_USER = "user"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    PII_READER = "pii_reader"


# What each role includes: admin can do what an operator can, an operator what a viewer can.
_IMPLIES: dict[Role, frozenset[Role]] = {
    Role.VIEWER: frozenset({Role.VIEWER}),
    Role.OPERATOR: frozenset({Role.VIEWER, Role.OPERATOR}),
    Role.ADMIN: frozenset({Role.VIEWER, Role.OPERATOR, Role.ADMIN}),
    Role.PII_READER: frozenset({Role.PII_READER}),
}


@lru_cache(maxsize=256)  # a handful of role sets; a caller asks on every request
def expand_roles(roles: frozenset[Role]) -> frozenset[Role]:
    """Higher roles include the lower ones."""
    out: set[Role] = set()
    for role in roles:
        out |= _IMPLIES[role]
    return frozenset(out)


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    key_id: int | None = None
    channel: Channel | None = None
    roles: frozenset[Role] = field(default_factory=frozenset)
    user_id: int | None = None

    @property
    def actor(self) -> str:
        """How the graph's history names this caller."""
        if self.kind is PrincipalKind.END_USER:
            return f"user:{self.user_id}"
        if self.kind is PrincipalKind.SERVICE:
            return f"service:{self.channel}:{self.key_id}"
        return f"operator:{self.key_id}"

    def has_role(self, role: Role) -> bool:
        return self.kind is PrincipalKind.OPERATOR and role in expand_roles(self.roles)

    @property
    def can_read_pii(self) -> bool:
        return self.has_role(Role.PII_READER)
