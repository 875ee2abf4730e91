"""Preferences read only what can score: the narrowed reads keep exactly the records the rules
would have scored from the full ones (the same bound per identity applied first)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import distinct, select

from app.db.channel_models import ChannelEvent
from app.domain import Channel
from app.domain.channel_data import EventRow
from app.stores import channel as store
from app.stores import preferences as preference_store
from tests.factories.auth import service_key
from tests.factories.channel_data import event, ingest, mp_order, openid

ODD_VALUES: list[Any] = ["A1", " B2 ", "", "  ", 7, 0, 1.5, True, False, None, {"x": 1}, ["C3"]]


def _scored(rules: Any, rows: list[EventRow]) -> list[tuple[Any, ...]]:
    out = []
    for e in rows:
        sku = rules.sku_of(e.channel, e.properties)
        if sku is not None:
            out.append(
                (
                    e.identity_ref,
                    e.channel,
                    e.type,
                    e.occurred_at,
                    sku,
                    rules.name_of(e.channel, e.properties),
                )
            )
    return sorted(out, key=repr)


async def test_narrowed_reads_keep_what_the_rules_score(app: FastAPI, client: httpx.AsyncClient) -> None:
    settings, dictionary = app.state.settings, app.state.dictionary
    rules = dictionary.preferences
    key = await service_key(app, "MINI_PROGRAM")
    mp = openid(settings.mini_program_appid, "o-narrow")
    records = []
    for n, value in enumerate(ODD_VALUES):
        at = f"2026-11-{n + 1:02d}T10:00:00+08:00"
        props = {"goodsId": value, "name": value} if n % 2 else {"sku": value, "goodsId": "G", "name": "N"}
        records.append(event(f"e{n}", mp, name="product_view", properties=props, at=at))
        records.append(event(f"f{n}", mp, name="favorite", properties={"product_id": value}, at=at))
    records.append(event("x", mp, name="page_view", properties={"title": "no SKU"}))
    records.append(event("y", mp, name="article_read", properties={"sku": "A1"}))  # not a view
    records += [
        mp_order("o1", mp, order_id="MP-1", status="已支付"),
        mp_order("o2", mp, order_id="MP-2", status="待支付"),
    ]
    await ingest(client, key, "MINI_PROGRAM", records)
    async with app.state.db.read_sessions() as s:
        refs = list((await s.execute(select(distinct(ChannelEvent.identity_ref)))).scalars())
        types = sorted(set(rules.view_events) | set(rules.favorite_events))
        channels = list(Channel)
        for per_ref in (1000, 5):  # the bound applies before the narrowing, as it did before it
            full = await store.events_for_refs(
                s, channels=channels, refs=refs, types=types, before=None, per_ref=per_ref
            )
            narrow = await preference_store.sku_events_for_refs(
                s,
                channels=channels,
                refs=refs,
                types=types,
                sku_keys=sorted({k for keys in rules.sku_fields.values() for k in keys}),
                name_keys=sorted({k for keys in rules.name_fields.values() for k in keys}),
                per_ref=per_ref,
            )
            assert len(narrow) < len(full)  # the page_view without a SKU field, at least
            assert _scored(rules, narrow) == _scored(rules, full)
        assert len(_scored(rules, full)) >= 1
        orders, _ = await store.orders_for_refs(
            s, channels=channels, refs=refs, status_code=None, before=None, per_ref=500
        )
        paid = await preference_store.paid_orders_for_refs(
            s, channels=channels, refs=refs, paid_codes=dictionary.paid_codes(), per_ref=500
        )
        assert sorted(o.id for o in paid) == sorted(
            o.id for o in orders if o.status_code in dictionary.paid_codes()
        )
        assert len(paid) == 1
