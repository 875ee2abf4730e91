"""The caller in GraphQL: who the key or token names and what it may do."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from app.context import RequestContext
from graphql_schema.enums import Channel
from graphql_schema.permissions import AUTHENTICATED
from resolvers import caller as resolve

Ctx = Info[RequestContext, None]


@strawberry.type(description="Who is calling, and what the caller may do.")
class Caller:
    kind: str = strawberry.field(description="service, operator or user.")
    actor: str = strawberry.field(
        description="How the audit log and the graph's history name the caller: service:<channel>:<key>, "
        "operator:<key>, user:<id>."
    )
    roles: list[str] = strawberry.field(
        description="An operator's roles, the ones they include too (admin: operator, viewer); "
        "empty for other callers."
    )
    channel: Channel | None = strawberry.field(description="A service's channel; null for other callers.")
    reads_pii: bool = strawberry.field(
        description="Whether phones are shown unmasked (audited) to the caller."
    )
    may_unmerge: bool = strawberry.field(description="Whether the caller may undo merges (`unmerge`).")


@strawberry.type
class CallerQuery:
    @strawberry.field(
        description="The caller: what the key or token sent names, and what it may do.",
        permission_classes=AUTHENTICATED,
    )
    def caller(self, info: Ctx) -> Caller:
        view = resolve.caller(info.context)
        return Caller(
            kind=view.kind,
            actor=view.actor,
            roles=view.roles,
            channel=view.channel,
            reads_pii=view.reads_pii,
            may_unmerge=view.may_unmerge,
        )
