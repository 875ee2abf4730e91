"""SQL for the portrait's audience leaves (traits, journey, preference), defined as the portrait
loaders define them (loaders/portrait.py): store rows per identity ref, then conditions on users.id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, and_, case, false, func, literal, null, select, union_all

from app.db.channel_models import ChannelOrder, RawRecord
from app.db.models import Identity, SignIn, User
from app.domain import IdentityKind
from app.stores.audience_sql import IDENTITY_REF


def paid_value_rows(channels: Sequence[str], paid: Sequence[int], refs: Sequence[str] | None) -> Select[Any]:
    """Each identity's orders that reached PAID or later (cancelled excluded), summed in cents."""
    o = ChannelOrder
    stmt = select(o.identity_ref.label("ref"), func.sum(o.total_cents).label("n")).where(
        o.channel.in_(channels), o.status_code.in_(list(paid))
    )
    if refs is not None:
        stmt = stmt.where(o.identity_ref.in_(list(refs)))
    return cast("Select[Any]", stmt.group_by(o.identity_ref))


def first_record_rows(channels: Sequence[str], refs: Sequence[str] | None) -> Select[Any]:
    """Each identity's first record in each channel (the journey's spans)."""
    r = RawRecord
    stmt = select(
        r.identity_ref.label("ref"), r.channel.label("channel"), func.min(r.occurred_at).label("at")
    )
    stmt = stmt.where(r.channel.in_(channels))
    if refs is not None:
        stmt = stmt.where(r.identity_ref.in_(list(refs)))
    return cast("Select[Any]", stmt.group_by(r.identity_ref, r.channel))


def path_starts_with(firsts: Any, appids: dict[str, str], prefix: Sequence[str]) -> ColumnElement[bool]:
    """Users whose channels, ordered by first appearance (a record, a sign-in through Troika, or an
    identity of the channel linked), begin with `prefix`; ties by channel name, as User.journey has it."""
    if not prefix:
        return false()
    i = Identity
    owned = case(
        *[
            (and_(i.kind == IdentityKind.OPENID.value, i.namespace == a), literal(c))
            for a, c in appids.items()
        ],
        (i.kind == IdentityKind.APP_USER_ID.value, literal("APP")),
        else_=null(),
    )
    records = select(i.user_id.label("uid"), firsts.c.channel.label("channel"), firsts.c.at.label("at")).join(
        firsts, firsts.c.ref == IDENTITY_REF
    )
    links = select(i.user_id.label("uid"), owned.label("channel"), i.linked_at.label("at")).where(
        owned.is_not(None)
    )
    signed = (
        select(i.user_id.label("uid"), SignIn.channel.label("channel"), func.min(SignIn.at).label("at"))
        .join(SignIn, SignIn.identity_ref == IDENTITY_REF)
        .group_by(i.user_id, SignIn.channel)
    )
    both = union_all(records, links, signed).subquery()
    seen = (
        select(both.c.uid, both.c.channel, func.min(both.c.at).label("first"))
        .group_by(both.c.uid, both.c.channel)
        .subquery()
    )
    place = func.row_number().over(partition_by=seen.c.uid, order_by=(seen.c.first, seen.c.channel))
    ranked = select(seen.c.uid, seen.c.channel, place.label("pos")).subquery()
    return and_(
        *[
            User.id.in_(select(ranked.c.uid).where(ranked.c.pos == n + 1, ranked.c.channel == channel))
            for n, channel in enumerate(prefix)
        ]
    )
