"""SQL for the portrait: per identity and channel, the figures traits and journeys are made of."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from app.db.channel_models import ChannelOrder, RawRecord
from app.domain import Channel

_REFS: BindParameter[Any] = bindparam("refs", expanding=True)
_CHANNELS: BindParameter[Any] = bindparam("channels", expanding=True)
_PAID: BindParameter[Any] = bindparam("paid", expanding=True)


@dataclass(frozen=True, slots=True)
class SpanRow:
    """When one identity's records in one channel start and end."""

    identity_ref: str
    channel: Channel
    first_at: datetime
    last_at: datetime


@dataclass(frozen=True, slots=True)
class OrderFigures:
    """One identity's orders in one channel: paid ones summed, and the first order of any status."""

    identity_ref: str
    channel: Channel
    paid_orders: int
    paid_cents: int
    first_paid_at: datetime | None
    last_paid_at: datetime | None
    first_order_at: datetime


@dataclass(frozen=True, slots=True)
class CartChange:
    """One accepted cart record, as it arrived (the store keeps only the latest quantity)."""

    identity_ref: str
    channel: Channel
    type: str
    occurred_at: datetime
    payload: dict[str, Any]


def _params(refs: Sequence[str], channels: Sequence[Channel], **more: Any) -> dict[str, Any]:
    return {"refs": list(refs), "channels": [c.value for c in channels], **more}


_SPANS = (
    select(
        RawRecord.identity_ref,
        RawRecord.channel,
        func.min(RawRecord.occurred_at),
        func.max(RawRecord.occurred_at),
    )
    .where(RawRecord.identity_ref.in_(_REFS), RawRecord.channel.in_(_CHANNELS))
    .group_by(RawRecord.identity_ref, RawRecord.channel)
)
_is_paid = ChannelOrder.status_code.in_(_PAID)
_FIGURES = (
    select(
        ChannelOrder.identity_ref,
        ChannelOrder.channel,
        func.count(case((_is_paid, 1))),
        func.coalesce(func.sum(case((_is_paid, ChannelOrder.total_cents), else_=0)), 0),
        func.min(case((_is_paid, ChannelOrder.placed_at))),
        func.max(case((_is_paid, ChannelOrder.placed_at))),
        func.min(ChannelOrder.placed_at),
    )
    .where(ChannelOrder.identity_ref.in_(_REFS), ChannelOrder.channel.in_(_CHANNELS))
    .group_by(ChannelOrder.identity_ref, ChannelOrder.channel)
)
_CART_CHANGES = (
    select(
        RawRecord.identity_ref, RawRecord.channel, RawRecord.type, RawRecord.occurred_at, RawRecord.payload
    )
    .where(
        RawRecord.identity_ref.in_(_REFS),
        RawRecord.channel.in_(_CHANNELS),
        RawRecord.type.in_(bindparam("types", expanding=True)),
    )
    .order_by(RawRecord.occurred_at, RawRecord.id)
)


async def spans_for_refs(
    session: AsyncSession, *, channels: Sequence[Channel], refs: Sequence[str]
) -> list[SpanRow]:
    """The first and last record of each identity in each channel."""
    if not refs or not channels:
        return []
    rows = (await session.execute(_SPANS, _params(refs, channels))).all()
    return [SpanRow(ref, Channel(ch), first, last) for ref, ch, first, last in rows]


async def order_figures_for_refs(
    session: AsyncSession, *, channels: Sequence[Channel], refs: Sequence[str], paid_codes: Sequence[int]
) -> list[OrderFigures]:
    """Each identity's paid orders summed per channel, and its first order there."""
    if not refs or not channels:
        return []
    rows = (await session.execute(_FIGURES, _params(refs, channels, paid=list(paid_codes)))).all()
    return [
        OrderFigures(ref, Channel(ch), int(n), int(cents), first_paid, last_paid, first)
        for ref, ch, n, cents, first_paid, last_paid, first in rows
    ]


async def cart_changes_for_refs(
    session: AsyncSession, *, channels: Sequence[Channel], refs: Sequence[str], types: Sequence[str]
) -> list[CartChange]:
    """Every accepted cart record of these identities, oldest first."""
    if not refs or not channels or not types:
        return []
    rows = (await session.execute(_CART_CHANGES, _params(refs, channels, types=list(types)))).all()
    return [CartChange(ref, Channel(ch), t, at, payload) for ref, ch, t, at, payload in rows]
