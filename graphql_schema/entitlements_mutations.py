"""The permission center's mutations; each answers with the user as it now is."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from graphql_schema.entitlements import ConsentInput, Ctx
from graphql_schema.enums import Channel
from graphql_schema.identity import User
from graphql_schema.permissions import AUTHENTICATED
from resolvers import entitlements as resolve


@strawberry.type
class EntitlementsMutation:
    @strawberry.mutation(
        description="Set one consent: default deny; PUSH per channel; a MARKETING withdrawal in any channel "
        "withdraws it everywhere; LOCATION, LOCAL_STORAGE and PERSONALIZATION hold in every channel.",
        permission_classes=AUTHENTICATED,
    )
    async def set_consent(self, info: Ctx, input: ConsentInput) -> User:
        return User(
            record=await resolve.set_consents(
                info.context, user_ids=[input.user_id], changes=[input.change()]
            )
        )

    @strawberry.mutation(
        description="Set several consents of one user at once (a privacy prompt's answers); LOCATION is "
        "granted only on its own (SEPARATE_CONSENT_REQUIRED).",
        permission_classes=AUTHENTICATED,
    )
    async def set_consents(self, info: Ctx, inputs: list[ConsentInput]) -> User:
        record = await resolve.set_consents(
            info.context, user_ids=[i.user_id for i in inputs], changes=[i.change() for i in inputs]
        )
        return User(record=record)

    @strawberry.mutation(
        description="Open a membership in a channel (a channel's service, or an operator); the same tier "
        "again renews it, another tier replaces it. It holds in every channel.",
        permission_classes=AUTHENTICATED,
    )
    async def grant_membership(
        self,
        info: Ctx,
        user_id: strawberry.ID,
        tier: str,
        source_channel: Channel,
        expires_at: Annotated[
            datetime | None, strawberry.argument(description="When it ends; omit for no end.")
        ] = None,
    ) -> User:
        record = await resolve.grant_membership(
            info.context, user_id=user_id, tier=tier, source_channel=source_channel, expires_at=expires_at
        )
        return User(record=record)

    @strawberry.mutation(
        description="End the membership opened in a channel (its service, or an operator).",
        permission_classes=AUTHENTICATED,
    )
    async def revoke_membership(
        self, info: Ctx, user_id: strawberry.ID, source_channel: Channel, reason: str | None = None
    ) -> User:
        record = await resolve.revoke_membership(
            info.context, user_id=user_id, source_channel=source_channel, reason=reason
        )
        return User(record=record)

    @strawberry.mutation(
        description="Add (positive) or spend (negative) points; the balance never goes below zero.",
        permission_classes=AUTHENTICATED,
    )
    async def adjust_points(
        self, info: Ctx, user_id: strawberry.ID, points: int, reason: str, source_channel: Channel
    ) -> User:
        record = await resolve.adjust_points(
            info.context, user_id=user_id, delta=points, reason=reason, source_channel=source_channel
        )
        return User(record=record)

    @strawberry.mutation(
        description="Grant a staff role of the catalogue, for a scope such as store:12 (admins).",
        permission_classes=AUTHENTICATED,
    )
    async def grant_role(
        self, info: Ctx, user_id: strawberry.ID, role: str, scope: str | None = None
    ) -> User:
        return User(record=await resolve.grant_role(info.context, user_id=user_id, role=role, scope=scope))

    @strawberry.mutation(description="Revoke a staff role (admins).", permission_classes=AUTHENTICATED)
    async def revoke_role(
        self, info: Ctx, user_id: strawberry.ID, role: str, scope: str | None = None
    ) -> User:
        return User(record=await resolve.revoke_role(info.context, user_id=user_id, role=role, scope=scope))
