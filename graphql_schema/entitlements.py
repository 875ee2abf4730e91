"""The permission center's types: consents, memberships and benefits, staff roles."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from app.context import RequestContext
from app.domain.entitlements import ConsentChange, ConsentEntryRecord, MembershipRecord
from app.entitlements import catalogue as cat
from graphql_schema.enums import Channel, Purpose
from graphql_schema.permissions import AUTHENTICATED
from resolvers import entitlements as resolve
from resolvers.entitlements import RoleView

Ctx = Info[RequestContext, None]


@strawberry.type(description="A benefit of a membership tier.")
class Benefit:
    code: str = strawberry.field(description="Stable code, e.g. FREE_SHIPPING.")
    name: str = strawberry.field(description="Display name.")

    @classmethod
    def of(cls, b: cat.Benefit) -> Benefit:
        return cls(code=b.code, name=b.name)


@strawberry.type(description="A membership: opened in one channel, valid in all.")
class Membership:
    person_id: strawberry.Private[int]
    tier: str = strawberry.field(description="Tier, e.g. PLATINUM.")
    since: datetime = strawberry.field(description="When the membership began (UTC).")
    expires_at: datetime | None = strawberry.field(description="When it ends; null if it does not.")
    source_channel: Channel = strawberry.field(description="The channel it was opened in.")

    @strawberry.field(description="Points balance of the person, earned and spent in any channel.")
    async def points(self, info: Ctx) -> int:
        return await resolve.points(info.context, self.person_id)

    @classmethod
    def of(cls, m: MembershipRecord, person_id: int) -> Membership:
        return cls(
            person_id=person_id,
            tier=m.tier,
            since=m.since,
            expires_at=m.expires_at,
            source_channel=m.source_channel,
        )


@strawberry.type(description="A consent setting for one purpose.")
class Consent:
    purpose: Purpose = strawberry.field(description="What the consent is for.")
    channel: Channel | None = strawberry.field(description="Null: the setting holds for every channel.")
    granted: bool = strawberry.field(description="Whether it is granted.")
    source_channel: Channel = strawberry.field(description="The channel it was set in.")
    policy_version: str | None = strawberry.field(description="The privacy policy version shown.")
    updated_at: datetime = strawberry.field(description="When it was last set (UTC).")

    @classmethod
    def of(cls, e: ConsentEntryRecord) -> Consent:
        assert e.granted is not None
        return cls(
            purpose=e.purpose,
            channel=e.channel,
            granted=e.granted,
            source_channel=e.source_channel,
            policy_version=e.policy_version,
            updated_at=e.effective_at,
        )


@strawberry.type(description="An entry of the append-only consent ledger.")
class ConsentEntry:
    purpose: Purpose = strawberry.field(description="What the consent is for.")
    channel: Channel | None = strawberry.field(description="Null: the setting holds for every channel.")
    granted: bool | None = strawberry.field(
        description="The value set; null: no setting (an unmerge took back a value the other user brought)."
    )
    source_channel: Channel = strawberry.field(description="The channel it was set in.")
    policy_version: str | None = strawberry.field(description="The privacy policy version shown.")
    effective_at: datetime = strawberry.field(description="When it took effect (UTC).")
    actor: str = strawberry.field(
        description="Who recorded it: user:<id>, service:<channel>:<key>, operator:<key>."
    )
    cause: str = strawberry.field(
        description="set (the user's choice), cascade (a MARKETING withdrawal carried to this channel), "
        "merge (the stricter value of a merged user), unmerge (the own value back)."
    )
    user_id: strawberry.ID = strawberry.field(description="The user whose ledger holds it.")
    merge_id: strawberry.ID | None = strawberry.field(description="The merge that wrote it, if any.")

    @classmethod
    def of(cls, e: ConsentEntryRecord) -> ConsentEntry:
        return cls(
            purpose=e.purpose,
            channel=e.channel,
            granted=e.granted,
            source_channel=e.source_channel,
            policy_version=e.policy_version,
            effective_at=e.effective_at,
            actor=e.actor,
            cause=e.cause.value,
            user_id=strawberry.ID(str(e.user_id)),
            merge_id=None if e.merge_id is None else strawberry.ID(str(e.merge_id)),
        )


@strawberry.type(description="A staff role granted centrally; it holds in every channel.")
class RoleGrant:
    role: str = strawberry.field(description="The role, e.g. store_order_manager.")
    scope: str | None = strawberry.field(description="What it applies to, e.g. store:12; null: everywhere.")
    permissions: list[str] = strawberry.field(description="What the role allows.")
    granted_at: datetime = strawberry.field(description="When it was granted (UTC).")

    @classmethod
    def of(cls, v: RoleView) -> RoleGrant:
        return cls(role=v.role, scope=v.scope, permissions=list(v.permissions), granted_at=v.granted_at)


@strawberry.type(description="A membership tier of the catalogue.")
class MembershipTier:
    code: str = strawberry.field(description="The tier's code, e.g. PLATINUM.")
    name: str = strawberry.field(description="Display name.")
    rank: int = strawberry.field(description="Higher ranks win when a user holds several tiers.")
    benefits: list[Benefit] = strawberry.field(description="What the tier gives, in every channel.")


@strawberry.type(description="A staff role of the catalogue.")
class StaffRole:
    name: str = strawberry.field(description="The role, as grantRole takes it.")
    title: str = strawberry.field(description="Display name.")
    scopes: list[str] = strawberry.field(
        description="Scope kinds a grant names (store: store:<id>); empty: granted without a scope."
    )
    permissions: list[str] = strawberry.field(description="What the role allows ('x.*' covers all under x).")


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

    def change(self) -> ConsentChange:
        return ConsentChange(
            purpose=self.purpose,
            channel=self.channel,
            granted=self.granted,
            source_channel=self.source_channel,
            policy_version=self.policy_version,
        )


@strawberry.type
class EntitlementsQuery:
    @strawberry.field(description="The membership tier catalogue in force.", permission_classes=AUTHENTICATED)
    def membership_tiers(self, info: Ctx) -> list[MembershipTier]:
        tiers = sorted(resolve.catalogue(info.context).tiers.values(), key=lambda t: t.rank)
        return [
            MembershipTier(
                code=t.code, name=t.name, rank=t.rank, benefits=[Benefit.of(b) for b in t.benefits]
            )
            for t in tiers
        ]

    @strawberry.field(description="The staff role catalogue in force.", permission_classes=AUTHENTICATED)
    def staff_roles(self, info: Ctx) -> list[StaffRole]:
        return [
            StaffRole(name=r.name, title=r.title, scopes=list(r.scopes), permissions=list(r.permissions))
            for r in resolve.catalogue(info.context).roles.values()
        ]
