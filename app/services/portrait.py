"""The rules of a portrait: how a person's product preferences are scored, fading with age."""

from __future__ import annotations

import math
from datetime import datetime

from app.domain import Channel
from app.domain.channel_data import EventRow, OrderRow
from app.domain.portrait import Preference
from app.ingest.dictionary import DataDictionary
from app.stores.portrait import CartChange


def preferences(
    events: list[EventRow],
    orders: list[OrderRow],
    carts: list[CartChange],
    dictionary: DataDictionary,
    now: datetime,
) -> list[Preference]:
    """Score each SKU by views, favourites, cart adds and paid purchases, recent ones weighing more."""
    rules = dictionary.preferences
    paid = set(dictionary.paid_codes())
    found: dict[str, Preference] = {}

    def add(sku: str, kind: str, channel: Channel, at: datetime, name: str | None) -> None:
        pref = found.setdefault(sku, Preference(sku))
        age_days = max((now - at).total_seconds() / 86400, 0.0)
        pref.score += rules.weights[kind] * math.pow(0.5, age_days / rules.half_life_days)
        pref.channels.add(channel)
        pref.last_at = at if pref.last_at is None else max(pref.last_at, at)
        if name is not None and (pref.name_at is None or at >= pref.name_at):
            pref.name, pref.name_at = name, at
        if kind == "view":
            pref.views += 1
        elif kind == "favorite":
            pref.favorites += 1
        elif kind == "cart_add":
            pref.cart_adds += 1
        else:
            pref.purchases += 1

    for e in events:
        sku = rules.sku_of(e.channel, e.properties)
        if sku is not None:
            kind = "favorite" if e.type in rules.favorite_events else "view"
            add(sku, kind, e.channel, e.occurred_at, rules.name_of(e.channel, e.properties))
    held: dict[tuple[Channel, str, str], int] = {}
    for c in sorted(carts, key=lambda c: c.occurred_at):
        line = dictionary.cart_line(c.channel, c.type, c.payload)
        if line is None:
            continue
        key = (c.channel, c.identity_ref, line.sku)
        if line.quantity > held.get(key, 0):
            add(line.sku, "cart_add", c.channel, c.occurred_at, None)
        held[key] = line.quantity
    for o in orders:
        if o.status_code in paid:
            for item in o.items:
                sku = item.get("sku")
                if isinstance(sku, str) and sku:
                    name = item.get("name")
                    add(sku, "purchase", o.channel, o.placed_at, name if isinstance(name, str) else None)
    for pref in found.values():
        pref.score = round(pref.score, 6)
    return sorted(found.values(), key=lambda p: (-p.score, p.sku))
