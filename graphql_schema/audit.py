"""The audit log in GraphQL: admins page through who changed what."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from app.context import RequestContext
from app.domain.entitlements import AuditRecord
from app.services.audit import AuditPage
from graphql_schema.common import PageInfo
from graphql_schema.permissions import AUTHENTICATED
from resolvers import audit as resolve


@strawberry.type(description="One entry of the append-only audit log.")
class AuditEntry:
    id: strawberry.ID = strawberry.field(description="The entry's id.")
    at: datetime = strawberry.field(description="When it happened (UTC).")
    actor: str = strawberry.field(
        description="Who did it: user:<id>, service:<channel>:<key>, operator:<key>."
    )
    principal_kind: str = strawberry.field(description="user, service, operator or system.")
    action: str = strawberry.field(
        description="What was done: identity.link, identity.unlink, identity.merge, identity.unmerge, "
        "identity.prove-phone, identity.replace, identity.recycle, consent.set, consent.merge, "
        "consent.unmerge, membership.grant, membership.revoke, points.adjust, role.grant, role.revoke, "
        "key.create, pii.read (a response showed the user's phone unmasked), user.export, user.erase."
    )
    user_id: strawberry.ID | None = strawberry.field(description="The user it was done to, if any.")
    details: JSON = strawberry.field(
        description="What exactly changed; never identity values, phones or tokens (user ids name people)."
    )
    trace_id: str | None = strawberry.field(
        description="The request that did it (the traceId its errors and log lines quote); null outside "
        "a request (the CLI, ingestion's other doors, background work)."
    )

    @classmethod
    def of(cls, r: AuditRecord) -> AuditEntry:
        details: Any = r.details
        return cls(
            id=strawberry.ID(str(r.id)),
            at=r.at,
            actor=r.actor,
            principal_kind=r.principal_kind,
            action=r.action,
            user_id=None if r.target_user_id is None else strawberry.ID(str(r.target_user_id)),
            details=details,
            trace_id=r.trace_id,
        )


@strawberry.type(description="A page of the audit log, newest first.")
class AuditConnection:
    nodes: list[AuditEntry] = strawberry.field(description="The entries of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page ends.")

    @classmethod
    def of(cls, page: AuditPage) -> AuditConnection:
        return cls(
            nodes=[AuditEntry.of(r) for r in page.nodes],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        )


@strawberry.type
class AuditQuery:
    @strawberry.field(
        description="The audit log, newest first (admins); filter by user, action, actor and request.",
        permission_classes=AUTHENTICATED,
    )
    async def audit_log(
        self,
        info: Info[RequestContext, None],
        first: int = 20,
        after: str | None = None,
        user_id: strawberry.ID | None = None,
        action: Annotated[
            str | None,
            strawberry.argument(description="An action (consent.set), or a family of them (identity.*)."),
        ] = None,
        actor: Annotated[
            str | None, strawberry.argument(description="Who did it, e.g. operator:3, user:42.")
        ] = None,
        trace_id: Annotated[
            str | None, strawberry.argument(description="The entries one request wrote.")
        ] = None,
    ) -> AuditConnection:
        page = await resolve.audit_log(
            info.context,
            first=first,
            after=after,
            user_id=user_id,
            action=action,
            actor=actor,
            trace_id=trace_id,
        )
        return AuditConnection.of(page)
