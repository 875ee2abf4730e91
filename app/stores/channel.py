"""SQL for the channel stores: bulk writes for ingestion, batched reads for the loaders."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, case, func, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from app.db.channel_models import (
    ChannelCartItem,
    ChannelEvent,
    ChannelOrder,
    ChannelReservation,
    DeadLetter,
    RawRecord,
)
from app.domain import Channel
from app.domain.channel_data import CartRow, DeadLetterRow, EventRow, OrderRow, ReservationRow
from app.stores.bulk import Columns, insert_rows, is_postgres

_RAW: Columns = (
    ("channel", "text"),
    ("source_id", "text"),
    ("type", "text"),
    ("identity_ref", "text"),
    ("identity_sealed", "text"),
    ("occurred_at", "timestamptz"),
    ("payload", "json"),
    ("dictionary_version", "text"),
    ("received_at", "timestamptz"),
)
_ORDER: Columns = (
    ("channel", "text"),
    ("order_id", "text"),
    ("identity_ref", "text"),
    ("status_code", "int"),
    ("total_cents", "bigint"),
    ("currency", "text"),
    ("items", "json"),
    ("placed_at", "timestamptz"),
    ("updated_at", "timestamptz"),
    ("paid_at", "timestamptz"),
)
_CART: Columns = (
    ("channel", "text"),
    ("identity_ref", "text"),
    ("sku", "text"),
    ("quantity", "int"),
    ("updated_at", "timestamptz"),
)
_EVENT: Columns = (
    ("channel", "text"),
    ("identity_ref", "text"),
    ("type", "text"),
    ("occurred_at", "timestamptz"),
    ("properties", "json"),
)
# Nearly every record is new: answer one row (the ids only when some were replays), not one per record.
_COUNT_KEPT = (
    "WITH kept AS ({insert}) SELECT CASE WHEN count(*) < CAST(:total AS int)"
    " THEN COALESCE(array_agg(source_id), CAST('{}' AS text[])) END AS ids FROM kept"
)
# A newer update moves the order forward; any update keeps the earliest time it was paid.
_PAID_EARLIER = (
    "excluded.paid_at IS NOT NULL AND (ch_orders.paid_at IS NULL OR excluded.paid_at < ch_orders.paid_at)"
)
_NEWER = "ch_orders.updated_at < excluded.updated_at"
_ORDER_FORWARD = (
    "ON CONFLICT (channel, order_id) DO UPDATE SET "
    + ", ".join(
        f"{c} = CASE WHEN {_NEWER} THEN excluded.{c} ELSE ch_orders.{c} END"
        for c in ("identity_ref", "status_code", "total_cents", "currency", "items", "updated_at")
    )
    + f", paid_at = CASE WHEN {_PAID_EARLIER} THEN excluded.paid_at ELSE ch_orders.paid_at END"
    + f" WHERE {_NEWER} OR ({_PAID_EARLIER})"
)
_CART_FORWARD = (
    "ON CONFLICT (channel, identity_ref, sku) DO UPDATE SET quantity = excluded.quantity, "
    "updated_at = excluded.updated_at WHERE ch_cart_items.updated_at <= excluded.updated_at"
)


async def insert_raw_records(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Keep each new record's payload; returns the source ids that were new (the rest are replays).

    Like every multi-row write here, rows go in sorted by the conflict key, so concurrent
    batches lock index entries in one global order and never deadlock on each other.
    """
    if not rows:
        return set()
    rows = sorted(rows, key=lambda r: (r["channel"], r["source_id"]))
    if is_postgres(session):
        tail = "ON CONFLICT (channel, source_id) DO NOTHING RETURNING source_id"
        more = {"total": len(rows)}
        kept = (
            await insert_rows(session, "ch_records", _RAW, rows, tail, around=_COUNT_KEPT, more=more)
        ).one()
        return {r["source_id"] for r in rows} if kept.ids is None else set(kept.ids)
    ins = (
        sqlite_insert(RawRecord)
        .on_conflict_do_nothing(index_elements=["channel", "source_id"])
        .returning(RawRecord.source_id)
    )
    return set((await session.execute(ins, list(rows))).scalars())


async def upsert_orders(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert orders or move them forward; an update older than the stored one changes nothing."""
    if not rows:
        return
    rows = sorted(rows, key=lambda r: (r["channel"], r["order_id"]))
    if is_postgres(session):
        await insert_rows(session, "ch_orders", _ORDER, rows, _ORDER_FORWARD)
        return
    o = ChannelOrder
    ins = sqlite_insert(o)
    newer = o.updated_at < ins.excluded.updated_at
    paid_earlier = ins.excluded.paid_at.is_not(None) & (
        o.paid_at.is_(None) | (ins.excluded.paid_at < o.paid_at)
    )
    forward = ("identity_ref", "status_code", "total_cents", "currency", "items", "updated_at")
    stmt = ins.on_conflict_do_update(
        index_elements=["channel", "order_id"],
        set_={
            **{c: case((newer, ins.excluded[c]), else_=getattr(o, c)) for c in forward},
            "paid_at": case((paid_earlier, ins.excluded.paid_at), else_=o.paid_at),
        },
        where=newer | paid_earlier,
    )
    await session.execute(stmt, list(rows))


async def upsert_reservations(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert reservations or move them forward: an older update changes nothing but, when it is
    the earliest record seen, when the reservation was booked."""
    if not rows:
        return
    rows = sorted(rows, key=lambda r: (r["channel"], r["reservation_id"]))
    r = ChannelReservation
    ins = pg_insert(r) if is_postgres(session) else sqlite_insert(r)
    newer = r.updated_at < ins.excluded.updated_at

    def forward(column: str) -> Any:
        return case((newer, ins.excluded[column]), else_=getattr(r, column))

    stmt = ins.on_conflict_do_update(
        index_elements=["channel", "reservation_id"],
        set_={
            **{c: forward(c) for c in ("identity_ref", "service", "status_code", "starts_at", "updated_at")},
            "booked_at": case(
                (ins.excluded.booked_at < r.booked_at, ins.excluded.booked_at), else_=r.booked_at
            ),
        },
    )
    await session.execute(stmt, list(rows))


async def upsert_cart_items(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Latest change per (channel, identity, sku) wins; zero quantities stay as removals."""
    if not rows:
        return
    rows = sorted(rows, key=lambda r: (r["channel"], r["identity_ref"], r["sku"]))
    if is_postgres(session):
        await insert_rows(session, "ch_cart_items", _CART, rows, _CART_FORWARD)
        return
    ins = sqlite_insert(ChannelCartItem)
    stmt = ins.on_conflict_do_update(
        index_elements=["channel", "identity_ref", "sku"],
        set_={"quantity": ins.excluded.quantity, "updated_at": ins.excluded.updated_at},
        where=ChannelCartItem.updated_at <= ins.excluded.updated_at,
    )
    await session.execute(stmt, list(rows))


async def insert_events(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    if is_postgres(session):
        await insert_rows(session, "ch_events", _EVENT, rows)
        return
    await session.execute(insert(ChannelEvent), list(rows))


async def insert_dead_letters(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(DeadLetter), list(rows))


# Statements are built once per shape, with bind parameters: building and caching SQL per call
# was a measurable share of every read.
_REFS: BindParameter[Any] = bindparam("refs", expanding=True)
_CHANNELS: BindParameter[Any] = bindparam("channels", expanding=True)


def _before(at_col: Any, channel_col: Any, id_col: Any) -> Any:
    """Strictly after the cursor in (time, channel, id) descending order."""
    at: BindParameter[Any] = bindparam("before_at")
    channel: BindParameter[Any] = bindparam("before_channel")
    pk: BindParameter[Any] = bindparam("before_id")
    return or_(
        at_col < at, and_(at_col == at, or_(channel_col < channel, and_(channel_col == channel, id_col < pk)))
    )


def _ranked(stmt: Select[Any], partition: Any, order: Sequence[Any], *, counted: bool = False) -> Select[Any]:
    """Keep at most `per_ref` rows per identity: bounded reads however long a history is.

    `counted` adds each identity's number of matching rows (before the cut) as `ref_total`.
    """
    rank = func.row_number().over(partition_by=partition, order_by=order).label("rank")
    stmt = stmt.add_columns(rank)
    if counted:
        stmt = stmt.add_columns(func.count().over(partition_by=partition).label("ref_total"))
    sub = stmt.subquery()
    return select(sub).where(sub.c.rank <= bindparam("per_ref"))


@lru_cache(maxsize=8)
def _orders_stmt(with_status: bool, with_before: bool) -> Select[Any]:
    o = ChannelOrder
    stmt = select(o).where(o.identity_ref.in_(_REFS), o.channel.in_(_CHANNELS))
    if with_status:
        stmt = stmt.where(o.status_code == bindparam("status_code"))
    if with_before:
        stmt = stmt.where(_before(o.placed_at, o.channel, o.id))
    # The first page counts in the same statement; past a cursor the count needs its own.
    order = [o.placed_at.desc(), o.channel.desc(), o.id.desc()]
    return _ranked(stmt, o.identity_ref, order, counted=not with_before)


@lru_cache(maxsize=4)
def _order_counts_stmt(with_status: bool) -> Select[str, int]:
    o = ChannelOrder
    stmt = select(o.identity_ref, func.count()).where(o.identity_ref.in_(_REFS), o.channel.in_(_CHANNELS))
    if with_status:
        stmt = stmt.where(o.status_code == bindparam("status_code"))
    return stmt.group_by(o.identity_ref)


@lru_cache(maxsize=8)
def _events_stmt(with_types: bool, with_before: bool) -> Select[Any]:
    e = ChannelEvent
    stmt = select(e).where(e.identity_ref.in_(_REFS), e.channel.in_(_CHANNELS))
    if with_types:
        stmt = stmt.where(e.type.in_(bindparam("types", expanding=True)))
    if with_before:
        stmt = stmt.where(_before(e.occurred_at, e.channel, e.id))
    return _ranked(stmt, e.identity_ref, [e.occurred_at.desc(), e.channel.desc(), e.id.desc()])


@lru_cache(maxsize=8)
def _reservations_stmt(with_status: bool, with_before: bool) -> Select[Any]:
    r = ChannelReservation
    stmt = select(r).where(r.identity_ref.in_(_REFS), r.channel.in_(_CHANNELS))
    if with_status:
        stmt = stmt.where(r.status_code == bindparam("status_code"))
    if with_before:
        stmt = stmt.where(_before(r.booked_at, r.channel, r.id))
    order = [r.booked_at.desc(), r.channel.desc(), r.id.desc()]
    return _ranked(stmt, r.identity_ref, order, counted=True)


_CART_STMT = select(
    ChannelCartItem.channel,
    ChannelCartItem.identity_ref,
    ChannelCartItem.sku,
    ChannelCartItem.quantity,
    ChannelCartItem.updated_at,
).where(ChannelCartItem.identity_ref.in_(_REFS), ChannelCartItem.channel.in_(_CHANNELS))


def _params(
    refs: Sequence[str], channels: Sequence[Channel], before: tuple[datetime, str, int] | None, **more: Any
) -> dict[str, Any]:
    params = {"refs": list(refs), "channels": [c.value for c in channels], **more}
    if before is not None:
        params.update(before_at=before[0], before_channel=before[1], before_id=before[2])
    return params


async def orders_for_refs(
    session: AsyncSession,
    *,
    channels: Sequence[Channel],
    refs: Sequence[str],
    status_code: int | None,
    before: tuple[datetime, str, int] | None,
    per_ref: int,
) -> tuple[list[OrderRow], dict[str, int] | None]:
    """The newest orders of each identity in these channels, at most `per_ref` each.

    Without a cursor, also how many orders each identity has (else None: see `order_counts`).
    """
    if not refs or not channels:
        return [], {}
    params = _params(refs, channels, before, per_ref=per_ref)
    if status_code is not None:
        params["status_code"] = status_code
    rows = (await session.execute(_orders_stmt(status_code is not None, before is not None), params)).all()
    counts = None if before is not None else {r.identity_ref: int(r.ref_total) for r in rows}
    return [order_row(r) for r in rows], counts


def order_row(r: Any) -> OrderRow:
    """An order record from a row of `ch_orders`' columns (this module's and the portrait's reads)."""
    return OrderRow(
        id=r.id,
        channel=Channel(r.channel),
        order_id=r.order_id,
        identity_ref=r.identity_ref,
        status_code=r.status_code,
        total_cents=r.total_cents,
        currency=r.currency,
        items=r.items,
        placed_at=r.placed_at,
        updated_at=r.updated_at,
    )


async def reservations_for_refs(
    session: AsyncSession,
    *,
    channels: Sequence[Channel],
    refs: Sequence[str],
    status_code: int | None,
    before: tuple[datetime, str, int] | None,
    per_ref: int,
) -> tuple[list[ReservationRow], dict[str, int]]:
    """The newest reservations of each identity, at most `per_ref` each, and how many match
    (past a cursor: how many are left)."""
    if not refs or not channels:
        return [], {}
    params = _params(refs, channels, before, per_ref=per_ref)
    if status_code is not None:
        params["status_code"] = status_code
    stmt = _reservations_stmt(status_code is not None, before is not None)
    rows = (await session.execute(stmt, params)).all()
    counts = {r.identity_ref: int(r.ref_total) for r in rows}
    return [
        ReservationRow(
            id=r.id,
            channel=Channel(r.channel),
            reservation_id=r.reservation_id,
            identity_ref=r.identity_ref,
            service=r.service,
            status_code=r.status_code,
            starts_at=r.starts_at,
            booked_at=r.booked_at,
            updated_at=r.updated_at,
        )
        for r in rows
    ], counts


async def order_counts(
    session: AsyncSession, *, channels: Sequence[Channel], refs: Sequence[str], status_code: int | None
) -> dict[str, int]:
    """How many orders each identity has in these channels."""
    if not refs or not channels:
        return {}
    params = _params(refs, channels, None)
    if status_code is not None:
        params["status_code"] = status_code
    rows = (await session.execute(_order_counts_stmt(status_code is not None), params)).all()
    return {ref: int(n) for ref, n in rows}


async def cart_for_refs(
    session: AsyncSession, *, channels: Sequence[Channel], refs: Sequence[str]
) -> list[CartRow]:
    """Every cart line (removals included) of these identities."""
    if not refs or not channels:
        return []
    rows = (await session.execute(_CART_STMT, _params(refs, channels, None))).all()
    return [CartRow(Channel(r.channel), r.identity_ref, r.sku, r.quantity, r.updated_at) for r in rows]


async def events_for_refs(
    session: AsyncSession,
    *,
    channels: Sequence[Channel],
    refs: Sequence[str],
    types: Sequence[str] | None,
    before: tuple[datetime, str, int] | None,
    per_ref: int,
) -> list[EventRow]:
    """The newest events of each identity, at most `per_ref` each."""
    if not refs or not channels:
        return []
    params = _params(refs, channels, before, per_ref=per_ref)
    if types:
        params["types"] = list(types)
    rows = (await session.execute(_events_stmt(bool(types), before is not None), params)).all()
    return [
        EventRow(
            id=r.id,
            channel=Channel(r.channel),
            identity_ref=r.identity_ref,
            type=r.type,
            occurred_at=r.occurred_at,
            properties=r.properties,
        )
        for r in rows
    ]


async def dead_letters(session: AsyncSession, *, channel: Channel | None, limit: int) -> list[DeadLetterRow]:
    """The newest rejected records, for people to look at."""
    stmt = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    if channel is not None:
        stmt = stmt.where(DeadLetter.channel == channel.value)
    return [
        DeadLetterRow(d.id, Channel(d.channel), d.source_id, d.payload, d.reason, d.received_at)
        for d in (await session.execute(stmt)).scalars()
    ]
