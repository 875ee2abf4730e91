"""PIPL rights in GraphQL: a person's data exported as one document, or erased everywhere."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from app.context import RequestContext
from app.services.erasure import ErasureReport
from graphql_schema.permissions import AUTHENTICATED
from resolvers import pii as resolve

Ctx = Info[RequestContext, None]


@strawberry.type(description="Rows of one table of one store.")
class TableCount:
    store: str = strawberry.field(
        description="The database: hub, or the channels a channel-store database of its own holds "
        "(e.g. APP, or MINI_PROGRAM+OFFICIAL_ACCOUNT)."
    )
    table: str = strawberry.field(description="The table.")
    rows: int = strawberry.field(description="How many rows.")


def _counts(counts: dict[tuple[str, str], int]) -> list[TableCount]:
    return [TableCount(store=s, table=t, rows=n) for (s, t), n in sorted(counts.items())]


@strawberry.type(description="What an erasure removed, and what it kept in anonymised form.")
class ErasureResult:
    user_id: strawberry.ID = strawberry.field(description="The person erased (an absorbed id: its survivor).")
    erased_user_ids: list[strawberry.ID] = strawberry.field(
        description="Every user of the person's merge cluster: all erased."
    )
    at: datetime = strawberry.field(description="When (UTC).")
    removed: list[TableCount] = strawberry.field(
        description="Rows deleted, per store and table (tables with none included)."
    )
    kept: list[TableCount] = strawberry.field(
        description="Rows kept, naming nobody: the user tombstones, the consent ledger (the proof of "
        "what was agreed, now of an anonymous user) and the merges (their reason erased)."
    )

    @classmethod
    def of(cls, report: ErasureReport) -> ErasureResult:
        return cls(
            user_id=strawberry.ID(str(report.user_id)),
            erased_user_ids=[strawberry.ID(str(i)) for i in report.user_ids],
            at=report.at,
            removed=_counts(report.removed),
            kept=_counts(report.kept),
        )


@strawberry.type
class PiiQuery:
    @strawberry.field(
        description="Everything held about a person (PIPL access and portability) as one JSON document: "
        "identities (phones in clear) and their history, merges, consents and their ledger, "
        "memberships, points, roles, orders, cart, behaviour, raw and rejected records. The person "
        "themselves or an admin; audited.",
        permission_classes=AUTHENTICATED,
    )
    async def export_user(self, info: Ctx, user_id: strawberry.ID) -> JSON:
        document: Any = await resolve.export_user(info.context, user_id=user_id)
        return cast(JSON, document)


@strawberry.type
class PiiMutation:
    @strawberry.mutation(
        description="Erase a person (PIPL deletion) in every store, channel stores included; a merged "
        "person's whole cluster. The consent ledger stays as anonymised proof. Their identities can "
        "sign up again, as a new user. The person themselves or an admin; audited.",
        permission_classes=AUTHENTICATED,
    )
    async def erase_user(self, info: Ctx, user_id: strawberry.ID) -> ErasureResult:
        return ErasureResult.of(await resolve.erase_user(info.context, user_id=user_id))
