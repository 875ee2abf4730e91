"""Staff roles: granted centrally by admins, read across the person's merge cluster, so a staff
member holds the same rights whichever channel (and whichever merged account) they sign in from.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.types import utcnow
from app.domain import UserRecord
from app.domain.entitlements import RoleGrantRecord
from app.entitlements.catalogue import SCOPE, Catalogue, StaffRole
from app.errors import DomainError, NotFound
from app.services import audit
from app.services.changes import Topic, users_changed
from app.services.users import lock_active_user
from app.stores import roles as store


def _invalid_scope(message: str, role: str) -> DomainError:
    return DomainError(message, code="INVALID_SCOPE", role=role)


def check_scope(role: StaffRole, scope: str | None) -> str | None:
    """A role with scope kinds needs a scope of one of them (store:12); one without takes none."""
    scope = scope.strip() if scope else None
    kinds = " or ".join(f"{k}:<id>" for k in role.scopes)
    if scope is None:
        if role.scopes:
            raise _invalid_scope(f"role {role.name} is granted for a scope: {kinds}", role.name)
        return None
    if not role.scopes:
        raise _invalid_scope(f"role {role.name} holds everywhere: omit the scope", role.name)
    match = SCOPE.fullmatch(scope)
    if match is None or match["kind"] not in role.scopes:
        raise _invalid_scope(f"{scope!r} is not a scope of role {role.name}: {kinds}", role.name)
    return scope


def dedupe(grants: Iterable[RoleGrantRecord]) -> list[RoleGrantRecord]:
    """One grant per (role, scope) across merged accounts: the earliest."""
    seen: dict[tuple[str, str | None], RoleGrantRecord] = {}
    for g in sorted(grants, key=lambda g: (g.granted_at, g.id)):
        seen.setdefault((g.role, g.scope), g)
    return list(seen.values())


def has_permission(
    grants: Iterable[RoleGrantRecord], catalogue: Catalogue, permission: str, scope: str | None
) -> bool:
    """A grant without scope holds everywhere; a scoped one only for exactly its scope."""
    for grant in grants:
        role = catalogue.role(grant.role)
        if role is None or (grant.scope is not None and grant.scope != scope):
            continue
        if role.allows(permission):
            return True
    return False


class StaffRoles:
    """Role writes inside the caller's transaction; it flushes, never commits."""

    def __init__(self, session: AsyncSession, catalogue: Catalogue) -> None:
        self.session = session
        self.catalogue = catalogue

    async def _held(self, user_id: int, role: str, scope: str | None) -> list[RoleGrantRecord]:
        found = (await store.active_by_user_ids(self.session, [user_id])).get(user_id, [])
        return [g for g in found if g.role == role and g.scope == scope]

    async def grant(self, user_id: int, *, role: str, scope: str | None, actor: str) -> UserRecord:
        """Grant a catalogue role; granting one already held changes nothing."""
        spec = self.catalogue.role(role)
        if spec is None:
            known = ", ".join(self.catalogue.roles)
            raise DomainError(
                f"unknown role {role!r}; the catalogue has {known}", code="UNKNOWN_ROLE", role=role
            )
        scope = check_scope(spec, scope)
        s = self.session
        user = await lock_active_user(s, user_id)
        if await self._held(user.id, role, scope):
            return user
        await store.insert_grant(s, user_id=user.id, role=role, scope=scope, at=utcnow(), actor=actor)
        await audit.record(
            s, actor=actor, action="role.grant", user_id=user.id, details={"role": role, "scope": scope}
        )
        await users_changed(s, [user.id], topics=[Topic.ROLE])
        return user

    async def revoke(self, user_id: int, *, role: str, scope: str | None, actor: str) -> UserRecord:
        """Revoke a grant (also one a merged-in account held); ROLE_NOT_GRANTED if there is none.

        Roles the catalogue no longer lists can still be revoked.
        """
        scope = scope.strip() if scope else None
        s = self.session
        user = await lock_active_user(s, user_id)
        held = await self._held(user.id, role, scope)
        if not held:
            where = f" for {scope}" if scope else ""
            raise NotFound(f"user {user.id} does not hold role {role}{where}", code="ROLE_NOT_GRANTED")
        await store.revoke(s, [g.id for g in held], at=utcnow(), actor=actor)
        await audit.record(
            s, actor=actor, action="role.revoke", user_id=user.id, details={"role": role, "scope": scope}
        )
        await users_changed(s, [user.id], topics=[Topic.ROLE])
        return user
