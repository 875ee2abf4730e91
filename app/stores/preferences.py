"""SQL for product preferences: only the records that can name a SKU leave the database.

The same bounds as the behaviour and order reads (the newest `per_ref` of each identity) are
applied first; what is then dropped in SQL could not have scored (no SKU field holding a string or
a number, an order that was not paid), so the rules above see the same records that count.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from app.db.channel_models import ChannelEvent, ChannelOrder
from app.domain import Channel
from app.domain.channel_data import EventRow, OrderRow
from app.stores.channel import order_row

_REFS: BindParameter[Any] = bindparam("refs", expanding=True)
_CHANNELS: BindParameter[Any] = bindparam("channels", expanding=True)


def _newest(stmt: Select[Any], partition: Any, order: Sequence[Any]) -> Any:
    """The rows ranked per identity, newest first (the outer query keeps `rank <= per_ref`)."""
    rank = func.row_number().over(partition_by=partition, order_by=order).label("rank")
    return stmt.add_columns(rank).subquery()


@lru_cache(maxsize=16)
def _events_stmt(postgres: bool, sku_keys: tuple[str, ...], keys: tuple[str, ...]) -> Select[Any]:
    e = ChannelEvent
    inner = select(e.channel, e.identity_ref, e.type, e.occurred_at, e.properties).where(
        e.identity_ref.in_(_REFS), e.channel.in_(_CHANNELS), e.type.in_(bindparam("types", expanding=True))
    )
    sub = _newest(inner, e.identity_ref, [e.occurred_at.desc(), e.channel.desc(), e.id.desc()])
    base = [sub.c.channel, sub.c.identity_ref, sub.c.type, sub.c.occurred_at]
    if postgres:
        # Only the fields the rules read travel, each as the JSON value it is.
        names = {k: sub.c.properties[k] for k in keys}
        stmt = select(*base, *names.values()).where(
            or_(*(func.json_typeof(names[k]).in_(("string", "number")) for k in sku_keys))
        )
    else:  # SQLite's JSON extraction loses booleans: the whole properties, filtered
        stmt = select(*base, sub.c.properties).where(
            or_(*(func.json_extract(sub.c.properties, f'$."{k}"').isnot(None) for k in sku_keys))
        )
    return stmt.where(sub.c.rank <= bindparam("per_ref"))


async def sku_events_for_refs(
    session: AsyncSession,
    *,
    channels: Sequence[Channel],
    refs: Sequence[str],
    types: Sequence[str],
    sku_keys: Sequence[str],
    name_keys: Sequence[str],
    per_ref: int,
) -> list[EventRow]:
    """Of each identity's newest `per_ref` events of these types, those with a SKU field set (on
    PostgreSQL with only the SKU and name fields in `properties`; rows carry no id)."""
    if not refs or not channels or not types or not sku_keys:
        return []
    postgres = session.get_bind().dialect.name == "postgresql"
    keys = tuple(dict.fromkeys([*sku_keys, *name_keys]))
    stmt = _events_stmt(postgres, tuple(dict.fromkeys(sku_keys)), keys)
    params = {"refs": list(refs), "channels": [c.value for c in channels], "types": list(types)}
    rows = (await session.execute(stmt, {**params, "per_ref": per_ref})).all()
    out = []
    for ch, ref, type_, at, *values in rows:
        if postgres:
            props = {k: v for k, v in zip(keys, values, strict=True) if v is not None}
        else:
            props = values[0]
        out.append(
            EventRow(
                id=0, channel=Channel(ch), identity_ref=ref, type=type_, occurred_at=at, properties=props
            )
        )
    return out


@lru_cache(maxsize=2)
def _paid_stmt() -> Select[Any]:
    o = ChannelOrder
    inner = select(o).where(o.identity_ref.in_(_REFS), o.channel.in_(_CHANNELS))
    sub = _newest(inner, o.identity_ref, [o.placed_at.desc(), o.channel.desc(), o.id.desc()])
    return select(sub).where(
        sub.c.rank <= bindparam("per_ref"), sub.c.status_code.in_(bindparam("paid", expanding=True))
    )


async def paid_orders_for_refs(
    session: AsyncSession,
    *,
    channels: Sequence[Channel],
    refs: Sequence[str],
    paid_codes: Sequence[int],
    per_ref: int,
) -> list[OrderRow]:
    """Of each identity's newest `per_ref` orders (any status), the paid ones."""
    if not refs or not channels or not paid_codes:
        return []
    params = {"refs": list(refs), "channels": [c.value for c in channels], "paid": list(paid_codes)}
    rows = (await session.execute(_paid_stmt(), {**params, "per_ref": per_ref})).all()
    return [order_row(r) for r in rows]
