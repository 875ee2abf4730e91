"""SQL for the audience `preference` leaf: each identity's weighted, decayed signals for one SKU,
as User.preferences scores them (loaders/portrait.py): views and favourites, cart adds, purchases."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    Float,
    Select,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    union_all,
)

from app.db.channel_models import ChannelEvent, ChannelOrder, RawRecord
from app.domain import Channel
from app.stores.audience_sql import Binds


class PreferenceSource(Protocol):
    """What the leaf reads of the data dictionary (passed in: a store knows no ingestion module)."""

    @property
    def preferences(self) -> Any: ...

    def paid_codes(self) -> list[int]: ...

    def cart_fields(self, channel: Channel) -> dict[str, tuple[str, str]]: ...


# The loader's bounds (loaders/portrait.py): the newest this many per identity count.
EVENTS_PER_IDENTITY = 1000
ORDERS_PER_IDENTITY = 500
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_UNIX_EPOCH_JULIAN = 2440587.5


def _decay(b: Binds, at: Any, now: datetime, half_life_days: float) -> Any:
    """0.5 ** (age in days / half-life), age counted from `now` and never below 0."""
    if b.dialect == "sqlite":
        age = literal(now.timestamp() / 86400 + _UNIX_EPOCH_JULIAN) - func.julianday(at)
        return func.pow(0.5, func.max(age, 0.0) / half_life_days)
    age = cast((literal(now.timestamp()) - func.extract("epoch", at)) / 86400.0, Float)
    return func.power(0.5, func.greatest(age, 0.0) / half_life_days)


def _text_field(b: Binds, column: str, key: str) -> tuple[str, str]:
    """SQL for (the property is a usable SKU: non-blank text or an integer, its trimmed text)."""
    if b.dialect == "sqlite":
        kind = f"json_type({column}, '$.{key}')"
        value = f"trim(CAST(json_extract({column}, '$.{key}') AS TEXT))"
        return f"(({kind} = 'text' AND {value} <> '') OR {kind} = 'integer')", value
    kind = f"json_typeof({column}->'{key}')"
    value = f"btrim({column}->>'{key}')"
    return (
        f"(({kind} = 'string' AND {value} <> '') "
        f"OR ({kind} = 'number' AND {column}->>'{key}' ~ '^-?[0-9]+$'))",
        value,
    )


def _sku_is(b: Binds, column: str, fields: Sequence[str], sku: str) -> Any:
    """The event's SKU (the first usable of these properties) is `sku`."""
    keys = [f for f in dict.fromkeys(fields) if _KEY.match(f)]
    if not keys:
        return literal(False)
    whens = []
    for key in keys:
        test, value = _text_field(b, column, key)
        whens.append(f"WHEN {test} THEN {value}")
    return literal_column(f"(CASE {' '.join(whens)} END)") == sku


def _events(
    b: Binds, sku: str, d: PreferenceSource, channels: Sequence[Channel], now: datetime, refs: Any
) -> Select[Any]:
    rules = d.preferences
    e = ChannelEvent
    types = sorted(set(rules.view_events) | set(rules.favorite_events))
    rank = func.row_number().over(
        partition_by=e.identity_ref, order_by=(e.occurred_at.desc(), e.channel.desc(), e.id.desc())
    )
    inner = select(e.identity_ref, e.channel, e.type, e.occurred_at, e.properties, rank.label("rank")).where(
        e.channel.in_([c.value for c in channels]), e.type.in_(types)
    )
    if refs is not None:
        inner = inner.where(e.identity_ref.in_(list(refs)))
    pe = inner.subquery("pe")
    named = or_(
        *[
            and_(
                pe.c.channel == c.value,
                _sku_is(
                    b, "pe.properties", rules.sku_fields.get(c.value, ()) + rules.sku_fields.get("*", ()), sku
                ),
            )
            for c in channels
        ]
    )
    weight = case(
        (pe.c.type.in_(list(rules.favorite_events)), rules.weights["favorite"]), else_=rules.weights["view"]
    )
    w = weight * _decay(b, pe.c.occurred_at, now, rules.half_life_days)
    return select(pe.c.identity_ref.label("ref"), w.label("w")).where(pe.c.rank <= EVENTS_PER_IDENTITY, named)


def _purchases(
    b: Binds, sku: str, d: PreferenceSource, channels: Sequence[Channel], now: datetime, refs: Any
) -> Select[Any]:
    rules = d.preferences
    o = ChannelOrder
    rank = func.row_number().over(
        partition_by=o.identity_ref, order_by=(o.placed_at.desc(), o.channel.desc(), o.id.desc())
    )
    inner = select(o.identity_ref, o.status_code, o.placed_at, o.items, rank.label("rank")).where(
        o.channel.in_([c.value for c in channels])
    )
    if refs is not None:
        inner = inner.where(o.identity_ref.in_(list(refs)))
    po = inner.subquery("po")
    if b.dialect == "sqlite":
        line: Any = func.json_each(po.c["items"]).table_valued("value").alias("line")
        named = and_(
            func.json_type(line.c.value, "$.sku") == "text", func.json_extract(line.c.value, "$.sku") == sku
        )
        joined = po.join(line, true())
    else:
        line = func.json_array_elements(po.c["items"]).table_valued("value").lateral("line")
        item_sku = line.c.value.op("->")("sku")
        named = and_(func.json_typeof(item_sku) == "string", line.c.value.op("->>")("sku") == sku)
        joined = po.join(line, true())
    w = literal(rules.weights["purchase"]) * _decay(b, po.c.placed_at, now, rules.half_life_days)
    return (
        select(po.c.identity_ref.label("ref"), w.label("w"))
        .select_from(joined)
        .where(po.c.rank <= ORDERS_PER_IDENTITY, po.c.status_code.in_(d.paid_codes()), named)
    )


def _cart_adds(
    b: Binds, sku: str, d: PreferenceSource, channels: Sequence[Channel], now: datetime, refs: Any
) -> Select[Any] | None:
    """Cart records whose quantity rose above the identity's previous one of the SKU in the channel."""
    rules = d.preferences
    r = RawRecord
    lines: list[Select[Any]] = []
    for channel in channels:
        for type_name, (sku_field, qty_field) in d.cart_fields(channel).items():
            if not (_KEY.match(sku_field) and _KEY.match(qty_field)):
                continue
            if b.dialect == "sqlite":
                line_sku: Any = func.json_extract(r.payload, f"$.data.{sku_field}")
                qty: Any = func.json_extract(r.payload, f"$.data.{qty_field}")
                usable = and_(
                    func.json_type(r.payload, f"$.data.{sku_field}") == "text",
                    func.json_type(r.payload, f"$.data.{qty_field}") == "integer",
                )
            else:
                data = r.payload.op("->")("data")
                line_sku = data.op("->>")(sku_field)
                qty_json = data.op("->")(qty_field)
                qty = cast(data.op("->>")(qty_field), BigInteger)
                usable = and_(
                    func.json_typeof(data.op("->")(sku_field)) == "string",
                    func.json_typeof(qty_json) == "number",
                    data.op("->>")(qty_field).op("~")("^[0-9]+$"),
                )
            stmt = select(r.id, r.channel, r.identity_ref, r.occurred_at, qty.label("qty")).where(
                r.channel == channel.value, r.type == type_name, usable, line_sku == sku
            )
            if refs is not None:
                stmt = stmt.where(r.identity_ref.in_(list(refs)))
            lines.append(stmt)
    if not lines:
        return None
    both = (lines[0] if len(lines) == 1 else union_all(*lines)).subquery("cl")
    held = func.lag(both.c.qty, 1, 0).over(
        partition_by=(both.c.channel, both.c.identity_ref), order_by=(both.c.occurred_at, both.c.id)
    )
    changes = select(both.c.identity_ref, both.c.occurred_at, both.c.qty, held.label("held")).subquery("cc")
    w = literal(rules.weights["cart_add"]) * _decay(b, changes.c.occurred_at, now, rules.half_life_days)
    return select(changes.c.identity_ref.label("ref"), w.label("w")).where(changes.c.qty > changes.c.held)


def preference_rows(
    b: Binds,
    sku: str,
    d: PreferenceSource,
    channels: Sequence[Channel],
    now: datetime,
    refs: Sequence[str] | None,
) -> Select[Any]:
    """(ref, w) rows: one per signal of this SKU, its kind's weight decayed with age."""
    parts = [_events(b, sku, d, channels, now, refs), _purchases(b, sku, d, channels, now, refs)]
    if (carts := _cart_adds(b, sku, d, channels, now, refs)) is not None:
        parts.append(carts)
    every = union_all(*parts).subquery()
    return select(every.c.ref, every.c.w)
