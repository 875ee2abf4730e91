"""The permission center's types: consents, memberships and benefits, staff roles."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from graphql_schema.common import not_yet
from graphql_schema.enums import Channel, Purpose
from graphql_schema.permissions import AUTHENTICATED

if TYPE_CHECKING:
    from graphql_schema.identity import User


@strawberry.type(description="A benefit of a membership tier.")
class Benefit:
    code: str = strawberry.field(description="Stable code, e.g. FREE_SHIPPING.")
    name: str = strawberry.field(description="Display name.")


@strawberry.type(description="A membership: opened in one channel, valid in all.")
class Membership:
    tier: str = strawberry.field(description="Tier, e.g. PLATINUM.")
    points: int = strawberry.field(description="Points balance.")
    since: datetime = strawberry.field(description="When the membership began (UTC).")
    expires_at: datetime | None = strawberry.field(description="When it ends; null if it does not.")
    source_channel: Channel = strawberry.field(description="The channel it was opened in.")


@strawberry.type(description="A consent setting for one purpose.")
class Consent:
    purpose: Purpose = strawberry.field(description="What the consent is for.")
    channel: Channel | None = strawberry.field(description="Null: the setting holds for every channel.")
    granted: bool = strawberry.field(description="Whether it is granted.")
    source_channel: Channel = strawberry.field(description="The channel it was set in.")
    policy_version: str | None = strawberry.field(description="The privacy policy version shown.")
    updated_at: datetime = strawberry.field(description="When it was last set (UTC).")


@strawberry.type(description="A staff role granted centrally; it holds in every channel.")
class RoleGrant:
    role: str = strawberry.field(description="The role, e.g. store_order_manager.")
    scope: str | None = strawberry.field(description="What it applies to, e.g. store:12.")
    permissions: list[str] = strawberry.field(description="What the role allows.")
    granted_at: datetime = strawberry.field(description="When it was granted (UTC).")


@strawberry.input(description="A consent to set.")
class ConsentInput:
    user_id: strawberry.ID | None = strawberry.field(
        default=None, description="The user; omit for the signed-in user."
    )
    purpose: Purpose = strawberry.field(description="What the consent is for.")
    channel: Channel | None = strawberry.field(
        default=None, description="Omit for a setting that holds in every channel."
    )
    granted: bool = strawberry.field(description="Grant (true) or withdraw (false).")
    source_channel: Channel = strawberry.field(description="The channel the user set it in.")
    policy_version: str | None = strawberry.field(
        default=None, description="The privacy policy version shown."
    )


@strawberry.type
class EntitlementsMutation:
    @strawberry.mutation(
        description="Set one consent (default deny; see the permission center's rules).",
        permission_classes=AUTHENTICATED,
    )
    def set_consent(self, input: ConsentInput) -> Annotated[User, strawberry.lazy("graphql_schema.identity")]:
        raise not_yet("setConsent", 4)
