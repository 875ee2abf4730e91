"""The portrait's part of a compiled read: the same records the portrait stores return (events that
can name a SKU, paid orders, cart records, spans and order figures per identity and channel; the
sign-ins' spans on the hub), read inside the compiled statement of each database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.domain import Channel
from app.domain.channel_data import EventRow, OrderRow
from app.stores.portrait import CartChange, OrderFigures, SpanRow
from app.stores.sign_ins import SignInSpan

_CHANNELS = {c.value: c for c in Channel}


@dataclass(frozen=True)
class PortraitQuery:
    """What preferences (`events_per_ref` > 0) and traits/journeys (`figures`) read per database."""

    channels: tuple[Channel, ...]
    figures: bool
    preferences: bool
    event_types: tuple[str, ...] = ()
    sku_keys: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()  # the SKU and name fields
    paid: tuple[int, ...] = ()
    cart_types: tuple[str, ...] = ()
    events_per_ref: int = 0
    orders_per_ref: int = 0


@dataclass
class PortraitRows:
    events: list[EventRow] = field(default_factory=list)
    orders: list[OrderRow] = field(default_factory=list)
    carts: list[CartChange] = field(default_factory=list)
    spans: list[SpanRow] = field(default_factory=list)
    figures: list[OrderFigures] = field(default_factory=list)


def _lit(key: str) -> str:
    return "'" + key.replace("'", "''") + "'"


def _ranked(table: str, cols: str, cond: str, at: str) -> str:
    return (
        f"FROM (SELECT {cols}, row_number() OVER (PARTITION BY identity_ref ORDER BY {at} DESC, "
        f"channel DESC, id DESC) AS rank FROM {table} WHERE {cond}) r"
    )


_made: dict[tuple[bool, PortraitQuery, str], tuple[list[tuple[str, str]], dict[str, Any]]] = {}


def parts(sql: Any, q: PortraitQuery, refs: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """The JSON parts of one channel-store database (`sql`: app/stores/compiled.py's dialect); made
    once per query (its values are the dictionary's, the same for every request)."""
    key = (sql.pg, q, refs)
    found = _made.get(key)
    if found is None:
        if len(_made) > 256:
            _made.clear()
        made: dict[str, Any] = {}
        found = _made[key] = (_parts(sql, q, refs, made), made)
    params.update(found[1])
    return found[0]


def _parts(sql: Any, q: PortraitQuery, refs: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    # One list of channels and one of paid codes, named once: each value is bound once.
    params.update(pt_ch=[c.value for c in q.channels], pt_paid=list(q.paid) or [-1])
    where = f"identity_ref {refs} AND channel IN :pt_ch"
    if q.preferences:
        if q.event_types and q.sku_keys:
            params.update(pe_ty=list(q.event_types), pe_n=q.events_per_ref)
            cond = f"{where} AND type IN :pe_ty"
            src = _ranked(
                "ch_events", "id, channel, identity_ref, type, occurred_at, properties", cond, "occurred_at"
            )
            if sql.pg:  # only the fields the rules read travel, each as the JSON value it is
                has = " OR ".join(
                    f"json_typeof(properties -> {_lit(k)}) IN ('string', 'number')" for k in q.sku_keys
                )
                props = (
                    "json_build_object("
                    + ", ".join(f"{_lit(k)}, properties -> {_lit(k)}" for k in q.keys)
                    + ")"
                )
            else:  # SQLite's extraction loses booleans: the whole properties, filtered
                quoted = [_lit('$."' + k + '"') for k in q.sku_keys]
                has = " OR ".join(f"json_extract(properties, {p}) IS NOT NULL" for p in quoted)
                props = sql.json_col("properties")
            source = f"{src} WHERE rank <= :pe_n AND ({has})"
            cols = ["channel", "identity_ref", "type", "occurred_at", props]
            out.append(("pe", sql.agg(cols, source, "identity_ref, rank")))
        params.update(po_n=q.orders_per_ref)
        src = _ranked("ch_orders", "*", where, "placed_at")
        cols = ["id", "channel", "order_id", "identity_ref", "status_code", "total_cents", "currency"]
        cols += [sql.json_col("items"), "placed_at", "updated_at"]
        source = f"{src} WHERE rank <= :po_n AND status_code IN :pt_paid"
        out.append(("po", sql.agg(cols, source, "identity_ref, rank")))
        if q.cart_types:
            params.update(pc_ty=list(q.cart_types))
            source = f"FROM ch_records WHERE {where} AND type IN :pc_ty"
            cols = ["identity_ref", "channel", "type", "occurred_at", sql.json_col("payload")]
            out.append(("pc", sql.agg(cols, source, "occurred_at, id")))
    if q.figures:
        spans = (
            "FROM (SELECT identity_ref AS ref, channel AS ch, min(occurred_at) AS f, max(occurred_at) AS l "
            f"FROM ch_records WHERE {where} GROUP BY identity_ref, channel) s"
        )
        out.append(("ps", sql.agg(["ref", "ch", "f", "l"], spans, "ref, ch")))
        figures = (
            "FROM (SELECT identity_ref AS ref, channel AS ch, "
            "count(CASE WHEN status_code IN :pt_paid THEN 1 END) AS n, "
            "COALESCE(SUM(CASE WHEN status_code IN :pt_paid THEN total_cents ELSE 0 END), 0) AS cents, "
            "min(CASE WHEN status_code IN :pt_paid THEN placed_at END) AS fp, "
            "max(CASE WHEN status_code IN :pt_paid THEN placed_at END) AS lp, min(placed_at) AS fo "
            f"FROM ch_orders WHERE {where} GROUP BY identity_ref, channel) f"
        )
        out.append(("pf", sql.agg(["ref", "ch", "n", "cents", "fp", "lp", "fo"], figures, "ref, ch")))
    return out


def sign_in_part(sql: Any, refs: str) -> tuple[str, str]:
    """The hub's sign-ins: first and last per identity and channel."""
    source = (
        "FROM (SELECT identity_ref AS ref, channel AS ch, min(at) AS f, max(at) AS l FROM sign_ins "
        f"WHERE identity_ref {refs} GROUP BY identity_ref, channel) s"
    )
    return ("si", sql.agg(["ref", "ch", "f", "l"], source, "ref, ch"))


def sign_in_rows(found: dict[str, Any], when: Callable[[str], datetime]) -> list[SignInSpan]:
    return [SignInSpan(r[0], _CHANNELS[r[1]], when(r[2]), when(r[3])) for r in found.get("si") or []]


def rows(
    q: PortraitQuery,
    found: dict[str, Any],
    when: Callable[[str], datetime],
    at: Callable[[str | None], datetime | None],
) -> PortraitRows:
    """The parts' JSON as the portrait stores' records."""
    out = PortraitRows()
    out.events = [
        EventRow(
            id=0,
            channel=_CHANNELS[r[0]],
            identity_ref=r[1],
            type=r[2],
            occurred_at=when(r[3]),
            properties=r[4],
        )
        for r in found.get("pe") or []
    ]
    out.orders = [
        OrderRow(
            id=r[0],
            channel=_CHANNELS[r[1]],
            order_id=r[2],
            identity_ref=r[3],
            status_code=r[4],
            total_cents=r[5],
            currency=r[6],
            items=r[7],
            placed_at=when(r[8]),
            updated_at=when(r[9]),
        )
        for r in found.get("po") or []
    ]
    out.carts = [CartChange(r[0], _CHANNELS[r[1]], r[2], when(r[3]), r[4]) for r in found.get("pc") or []]
    out.spans = [SpanRow(r[0], _CHANNELS[r[1]], when(r[2]), when(r[3])) for r in found.get("ps") or []]
    out.figures = [
        OrderFigures(r[0], _CHANNELS[r[1]], int(r[2]), int(r[3]), at(r[4]), at(r[5]), when(r[6]))
        for r in found.get("pf") or []
    ]
    return out
