"""The unified user and the identity graph in GraphQL."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from app.context import RequestContext
from app.domain import LinkOutcome, MergeRecord, UserRecord
from graphql_schema.channel_data import BehaviorConnection, Cart, Interest, OrderConnection
from graphql_schema.common import PageInfo
from graphql_schema.entitlements import Benefit, Consent, ConsentEntry, Membership, RoleGrant
from graphql_schema.enums import Channel, IdentityKind, OrderStatus, Purpose, ReservationStatus
from graphql_schema.permissions import AUTHENTICATED
from graphql_schema.portrait import Journey, ProductPreference, UserTraits
from graphql_schema.reservations import ReservationConnection
from resolvers import audiences as resolve_audiences
from resolvers import channel_data as resolve_data
from resolvers import entitlements as resolve_rights
from resolvers import identity as resolve
from resolvers import portrait as resolve_portrait
from resolvers.identity import EdgeView, IdentityView, UserPage

Ctx = Info[RequestContext, None]


@strawberry.input(description="An identity: (kind, namespace, value).")
class IdentityInput:
    kind: IdentityKind = strawberry.field(description="The kind of identity.")
    value: str = strawberry.field(description="PHONE: E.164 or a national number (default region CN).")
    namespace: str | None = strawberry.field(
        default=None, description="OPENID: the issuing appid. EXTERNAL: the provider. Otherwise omitted."
    )
    unionid: str | None = strawberry.field(
        default=None,
        description="OPENID only: the unionid WeChat returned with it; both are linked to one user.",
    )

    def parts(self) -> tuple[IdentityKind, str, str | None]:
        return (self.kind, self.value, self.namespace)


@strawberry.type(description="An identity linked to a user.")
class Identity:
    kind: IdentityKind = strawberry.field(description="The kind of identity.")
    value: str = strawberry.field(
        description="PHONE values are masked (138****5678) unless the caller may read PII."
    )
    namespace: str | None = strawberry.field(description="OPENID: the appid. EXTERNAL: the provider.")
    channel: Channel | None = strawberry.field(
        description="The channel this identity belongs to, if any (an openid of an unknown appid has none)."
    )
    verified: bool = strawberry.field(description="Proven by the user (SMS, WeChat), not just asserted.")
    linked_at: datetime = strawberry.field(description="When it was linked (UTC).")
    linked_by: str = strawberry.field(description="The rule and source that linked it.")

    @classmethod
    def of(cls, view: IdentityView) -> Identity:
        return cls(
            kind=view.kind,
            value=view.value,
            namespace=view.namespace,
            channel=view.channel,
            verified=view.verified,
            linked_at=view.linked_at,
            linked_by=view.linked_by,
        )


@strawberry.type(description="An entry of the identity graph's append-only history.")
class IdentityEdge:
    action: str = strawberry.field(
        description="link, unlink (closed: rule replaced or recycled for phones), verify (proven by the "
        "person), merge (moved to a survivor) or unmerge (moved back)."
    )
    kind: IdentityKind = strawberry.field(description="The identity's kind.")
    namespace: str | None = strawberry.field(description="OPENID: the appid. EXTERNAL: the provider.")
    value: str = strawberry.field(description="PHONE values are masked unless the caller may read PII.")
    rule: str = strawberry.field(description="The rule that linked it, e.g. asserted, unionid.")
    source: str = strawberry.field(description="Where the link came from, e.g. 'unionid from code2session'.")
    actor: str = strawberry.field(
        description="Who did it: service:<channel>:<key>, operator:<key>, user:<id>."
    )
    at: datetime = strawberry.field(description="When (UTC).")
    user_id: strawberry.ID = strawberry.field(description="The user the edge was recorded against.")
    merge_id: strawberry.ID | None = strawberry.field(description="The merge that moved it, if any.")

    @classmethod
    def of(cls, view: EdgeView) -> IdentityEdge:
        return cls(
            action=view.action,
            kind=view.kind,
            namespace=view.namespace,
            value=view.value,
            rule=view.rule,
            source=view.source,
            actor=view.actor,
            at=view.at,
            user_id=strawberry.ID(str(view.user_id)),
            merge_id=None if view.merge_id is None else strawberry.ID(str(view.merge_id)),
        )


@strawberry.type(description="One customer across every channel.")
class User:
    record: strawberry.Private[UserRecord]

    @strawberry.field(description="The user's id; an absorbed user's id resolves to its survivor.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.record.id))

    @strawberry.field(description="When the user was first seen (UTC).")
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field(description="Masked unless the caller may read PII.")
    async def phone(self, info: Ctx) -> str | None:
        return await resolve.phone(info.context, self.record)

    @strawberry.field(description="Every identity linked to the user now.")
    async def identities(self, info: Ctx) -> list[Identity]:
        return [Identity.of(v) for v in await resolve.identities(info.context, self.record)]

    @strawberry.field(
        description="Why each identity is or was linked: the history of this user and of users merged "
        "into it, oldest first (operators)."
    )
    async def identity_history(self, info: Ctx) -> list[IdentityEdge]:
        return [IdentityEdge.of(v) for v in await resolve.identity_history(info.context, self.record)]

    @strawberry.field(
        description="The merges of this user and of users merged into it, as survivor or absorbed, "
        "undone ones too, oldest first (operators)."
    )
    async def merges(self, info: Ctx) -> list[Merge]:
        return [Merge.of(m) for m in await resolve.merges(info.context, self.record)]

    @strawberry.field(description="Orders across channels, newest first.")
    async def orders(
        self,
        info: Ctx,
        channel: Channel | None = None,
        status: OrderStatus | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> OrderConnection:
        page = await resolve_data.orders(
            info.context,
            self.record,
            channel=channel,
            status=status.value if status else None,
            first=first,
            after=after,
        )
        return OrderConnection.of(page, info.context.dictionary)

    @strawberry.field(
        description="Reservations made in every channel, newest first (the mini program's 我的预约 shows "
        "the official account's and the APP's too)."
    )
    async def reservations(
        self,
        info: Ctx,
        status: ReservationStatus | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> ReservationConnection:
        page = await resolve_data.reservations(
            info.context, self.record, status=status.value if status else None, first=first, after=after
        )
        return ReservationConnection.of(page, info.context.dictionary)

    @strawberry.field(description="The names of the saved audiences this person is in now (operators).")
    async def audiences(self, info: Ctx) -> list[str]:
        return await resolve_audiences.of_user(info.context, self.record)

    @strawberry.field(
        description="The unified cart: one line per SKU, the latest change across channels wins."
    )
    async def cart(self, info: Ctx) -> Cart:
        return Cart.of(await resolve_data.cart(info.context, self.record))

    @strawberry.field(description="The highest active membership tier across channels; null if none.")
    async def membership(self, info: Ctx) -> Membership | None:
        found = await resolve_rights.membership(info.context, self.record)
        return None if found is None else Membership.of(found, self.record.id)

    @strawberry.field(description="Benefits of every active membership; each holds in every channel.")
    async def benefits(self, info: Ctx) -> list[Benefit]:
        return [Benefit.of(b) for b in await resolve_rights.benefits(info.context, self.record)]

    @strawberry.field(description="Points balance, earned and spent in any channel.")
    async def points(self, info: Ctx) -> int:
        return await resolve_rights.points(info.context, self.record.id)

    @strawberry.field(description="Consent settings, per purpose and channel; an unanswered one is absent.")
    async def consents(
        self,
        info: Ctx,
        at: Annotated[
            datetime | None,
            strawberry.argument(description="The settings in force at this moment (default: now)."),
        ] = None,
    ) -> list[Consent]:
        return [Consent.of(c) for c in await resolve_rights.consents(info.context, self.record, at=at)]

    @strawberry.field(description="Whether the user allows `purpose` in `channel` (default deny).")
    async def allows(self, info: Ctx, purpose: Purpose, channel: Channel) -> bool:
        return await resolve_rights.allows(info.context, self.record, purpose=purpose, channel=channel)

    @strawberry.field(
        description="The append-only consent ledger of this user and of users merged into it, oldest first."
    )
    async def consent_history(self, info: Ctx, purpose: Purpose | None = None) -> list[ConsentEntry]:
        entries = await resolve_rights.consent_history(info.context, self.record, purpose=purpose)
        return [ConsentEntry.of(e) for e in entries]

    @strawberry.field(description="Staff roles granted to the user; they hold in every channel.")
    async def roles(self, info: Ctx) -> list[RoleGrant]:
        return [RoleGrant.of(r) for r in await resolve_rights.roles(info.context, self.record)]

    @strawberry.field(
        description="Whether the user's staff roles allow `permission` (e.g. store.orders.manage) for "
        "`scope` (e.g. store:12); without a scope, only roles that hold everywhere count."
    )
    async def has_permission(self, info: Ctx, permission: str, scope: str | None = None) -> bool:
        return await resolve_rights.has_permission(
            info.context, self.record, permission=permission, scope=scope
        )

    @strawberry.field(description="Behaviour events across channels, newest first.")
    async def behavior(
        self,
        info: Ctx,
        types: list[str] | None = None,
        channel: Channel | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> BehaviorConnection:
        page = await resolve_data.behavior(
            info.context, self.record, types=types, channel=channel, first=first, after=after
        )
        return BehaviorConnection.of(page)

    @strawberry.field(description="Weighted interests derived from behaviour in every channel.")
    async def interests(self, info: Ctx) -> list[Interest]:
        return [Interest.of(i) for i in await resolve_data.interests(info.context, self.record)]

    @strawberry.field(
        description="Products this person has shown interest in, across channels, highest score first."
    )
    async def preferences(
        self,
        info: Ctx,
        first: Annotated[
            int | None, strawberry.argument(description="How many, at most 100 (default 20).")
        ] = 20,
    ) -> list[ProductPreference]:
        found = await resolve_portrait.preferences(info.context, self.record, first=first)
        return [ProductPreference.of(p) for p in found]

    @strawberry.field(description="Lifetime figures over every channel the person used.")
    async def traits(self, info: Ctx) -> UserTraits:
        return UserTraits.of(await resolve_portrait.traits(info.context, self.record))

    @strawberry.field(description="When the person first and last appeared in each channel, in order.")
    async def journey(self, info: Ctx) -> Journey:
        return Journey.of(await resolve_portrait.journey(info.context, self.record))


def user_of(record: UserRecord | None) -> User | None:
    return None if record is None else User(record=record)


@strawberry.type(description="A page of users.")
class UserConnection:
    nodes: list[User] = strawberry.field(description="The users of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page ends.")
    total_count: int = strawberry.field(description="How many active users there are.")

    @classmethod
    def of(cls, page: UserPage) -> UserConnection:
        return cls(
            nodes=[User(record=u) for u in page.nodes],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
            total_count=page.total_count,
        )


@strawberry.type(description="A merge of two users; `id` is null in a dry run.")
class Merge:
    id: strawberry.ID | None = strawberry.field(
        description="The merge's id, for `unmerge`; null in a dry run."
    )
    survivor_id: strawberry.ID = strawberry.field(description="The older user, who keeps both.")
    absorbed_id: strawberry.ID = strawberry.field(
        description="The younger user, whose id now resolves to the survivor."
    )
    at: datetime = strawberry.field(description="When the merge happened (UTC).")
    undone_at: datetime | None = strawberry.field(
        default=None, description="When `unmerge` undid it (UTC); null while it holds."
    )

    @classmethod
    def of(cls, m: MergeRecord) -> Merge:
        return cls(
            id=None if m.id is None else strawberry.ID(str(m.id)),
            survivor_id=strawberry.ID(str(m.survivor_id)),
            absorbed_id=strawberry.ID(str(m.absorbed_id)),
            at=m.at,
            undone_at=m.undone_at,
        )


@strawberry.type(description="What a link did, or in a dry run would do.")
class LinkResult:
    user: User | None = strawberry.field(
        description="The user now holding the identity; null in a dry run that would create one."
    )
    merge: Merge | None = strawberry.field(
        description="Set when the link merged (or, in a dry run, would merge) two users."
    )
    dry_run: bool = strawberry.field(description="True when nothing was changed.")

    @classmethod
    def of(cls, outcome: LinkOutcome) -> LinkResult:
        return cls(
            user=user_of(outcome.user),
            merge=Merge.of(outcome.merges[0]) if outcome.merges else None,
            dry_run=outcome.dry_run,
        )


@strawberry.type
class IdentityQuery:
    @strawberry.field(description="The signed-in end user.", permission_classes=AUTHENTICATED)
    async def me(self, info: Ctx) -> User | None:
        return user_of(await resolve.me(info.context))

    @strawberry.field(description="A user by id or by any linked identity.", permission_classes=AUTHENTICATED)
    async def user(
        self, info: Ctx, id: strawberry.ID | None = None, identity: IdentityInput | None = None
    ) -> User | None:
        found = await resolve.user(info.context, user_id=id, identity=identity.parts() if identity else None)
        return user_of(found)

    @strawberry.field(description="Active users by id (operators).", permission_classes=AUTHENTICATED)
    async def users(self, info: Ctx, first: int = 20, after: str | None = None) -> UserConnection:
        return UserConnection.of(await resolve.users(info.context, first=first, after=after))


@strawberry.type
class IdentityMutation:
    @strawberry.mutation(
        description="Attach an identity; with no userId, resolve its owner or create a user. "
        "An identity owned by another user merges the two unless that breaks one-per-namespace.",
        permission_classes=AUTHENTICATED,
    )
    async def link_identity(
        self,
        info: Ctx,
        identity: IdentityInput,
        user_id: strawberry.ID | None = None,
        dry_run: bool | None = False,
        evidence: Annotated[
            str | None,
            strawberry.argument(description="Why you know this link, e.g. 'unionid from code2session'."),
        ] = None,
    ) -> LinkResult:
        outcome = await resolve.link_identity(
            info.context,
            user_id=user_id,
            identity=identity.parts(),
            unionid=identity.unionid,
            dry_run=bool(dry_run),
            source=evidence,
        )
        return LinkResult.of(outcome)

    @strawberry.mutation(
        description="Close one link; the history keeps it.", permission_classes=AUTHENTICATED
    )
    async def unlink_identity(self, info: Ctx, user_id: strawberry.ID, identity: IdentityInput) -> User:
        return User(
            record=await resolve.unlink_identity(info.context, user_id=user_id, identity=identity.parts())
        )

    @strawberry.mutation(
        description="Undo a merge: returns [survivor, restored].", permission_classes=AUTHENTICATED
    )
    async def unmerge(self, info: Ctx, merge_id: strawberry.ID) -> list[User]:
        return [User(record=u) for u in await resolve.unmerge(info.context, merge_id=merge_id)]
