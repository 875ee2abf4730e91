"""Portrait loaders: product preferences, traits and journeys, each batch asking every store once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aiodataloader import DataLoader

from app.channels import identity_channel
from app.db.engine import Database
from app.db.shared import SharedReads
from app.db.types import utcnow
from app.domain import Channel
from app.domain.channel_data import EventRow, OrderRow, group_by_ref
from app.domain.portrait import Journey, Preference, Presence, Traits
from app.ingest.dictionary import DataDictionary
from app.services.portrait import preferences
from app.settings import Settings
from app.stores import portrait as portrait_store
from app.stores import preferences as preference_store
from app.stores import sign_ins
from app.stores.portrait import CartChange, OrderFigures, SpanRow
from loaders.channel_data import _PerUser
from loaders.identity import IdentitiesByUserIdLoader

# Bounded reads however long a history is: the newest this many per identity count.
PREFERENCE_EVENTS_PER_IDENTITY = 1000
PREFERENCE_ORDERS_PER_IDENTITY = 500


class PreferencesByUserIdLoader(DataLoader[int, list[Preference]]):
    """Per SKU over every identity of the person: views, favourites, cart adds and purchases, scored."""

    def __init__(
        self,
        db: Database,
        identities: IdentitiesByUserIdLoader,
        dictionary: DataDictionary,
        reads: SharedReads | None = None,
    ) -> None:
        super().__init__()
        self.base = _PerUser(db, identities, None, reads)
        self.dictionary = dictionary

    async def batch_load_fn(self, keys: list[int]) -> list[list[Preference]]:
        by_user, refs = await self.base.refs(keys)
        rules = self.dictionary.preferences
        events: list[EventRow] = []
        orders: list[OrderRow] = []
        carts: list[CartChange] = []
        for engines, channels in self.base.stores():
            async with self.base.reads.session(engines) as session:
                # Only what can score leaves the database: events with a SKU field, paid orders.
                events += await preference_store.sku_events_for_refs(
                    session,
                    channels=channels,
                    refs=refs,
                    types=sorted(set(rules.view_events) | set(rules.favorite_events)),
                    sku_keys=sorted({k for keys in rules.sku_fields.values() for k in keys}),
                    name_keys=sorted({k for keys in rules.name_fields.values() for k in keys}),
                    per_ref=PREFERENCE_EVENTS_PER_IDENTITY,
                )
                orders += await preference_store.paid_orders_for_refs(
                    session,
                    channels=channels,
                    refs=refs,
                    paid_codes=self.dictionary.paid_codes(),
                    per_ref=PREFERENCE_ORDERS_PER_IDENTITY,
                )
                carts += await portrait_store.cart_changes_for_refs(
                    session, channels=channels, refs=refs, types=self.dictionary.cart_types()
                )
        ev, od, ct = group_by_ref(events), group_by_ref(orders), group_by_ref(carts)
        now = utcnow()
        return [
            preferences(
                [e for r in by_user[uid] for e in ev.get(r, [])],
                [o for r in by_user[uid] for o in od.get(r, [])],
                [c for r in by_user[uid] for c in ct.get(r, [])],
                self.dictionary,
                now,
            )
            for uid in keys
        ]


@dataclass(frozen=True)
class Figures:
    """One person's spans (records and sign-ins) and order figures, over all their identities."""

    spans: list[SpanRow]
    orders: list[OrderFigures]


class FiguresByUserIdLoader(DataLoader[int, Figures]):
    """Spans and order figures of a batch's identities, read once per store database and shared by
    traits and journeys (a query asking for both reads them once)."""

    def __init__(
        self,
        db: Database,
        identities: IdentitiesByUserIdLoader,
        dictionary: DataDictionary,
        reads: SharedReads | None = None,
    ) -> None:
        super().__init__()
        self.base = _PerUser(db, identities, None, reads)
        self.dictionary = dictionary

    async def batch_load_fn(self, keys: list[int]) -> list[Figures]:
        by_user, refs = await self.base.refs(keys)
        spans: list[SpanRow] = []
        figures: list[OrderFigures] = []
        for engines, channels in self.base.stores():
            async with self.base.reads.session(engines) as session:
                spans += await portrait_store.spans_for_refs(session, channels=channels, refs=refs)
                figures += await portrait_store.order_figures_for_refs(
                    session, channels=channels, refs=refs, paid_codes=self.dictionary.paid_codes()
                )
        # Sign-ins through Troika are appearances in their channel as much as records are.
        async with self.base.reads.session(self.base.db) as session:
            found = await sign_ins.spans_for_refs(session, refs)
        spans += [SpanRow(s.identity_ref, s.channel, s.first_at, s.last_at) for s in found]
        span_by, fig_by = group_by_ref(spans), group_by_ref(figures)
        return [
            Figures(
                [x for r in by_user[uid] for x in span_by.get(r, [])],
                [f for r in by_user[uid] for f in fig_by.get(r, [])],
            )
            for uid in keys
        ]


class TraitsByUserIdLoader(DataLoader[int, Traits]):
    """Lifetime figures over every identity of the person, summed in the stores' SQL."""

    def __init__(self, figures: FiguresByUserIdLoader) -> None:
        super().__init__()
        self.figures = figures

    async def batch_load_fn(self, keys: list[int]) -> list[Traits]:
        out = []
        for person in await self.figures.load_many(keys):
            mine, seen = person.orders, person.spans
            paid = sum(f.paid_orders for f in mine)
            cents = sum(f.paid_cents for f in mine)
            per_channel: dict[Channel, int] = {}
            for f in mine:
                if f.paid_orders:
                    per_channel[f.channel] = per_channel.get(f.channel, 0) + f.paid_orders
            firsts = [f.first_paid_at for f in mine if f.first_paid_at is not None]
            lasts = [f.last_paid_at for f in mine if f.last_paid_at is not None]
            out.append(
                Traits(
                    lifetime_value_cents=cents,
                    paid_orders=paid,
                    average_order_cents=round(cents / paid) if paid else None,
                    first_order_at=min(firsts, default=None),
                    last_order_at=max(lasts, default=None),
                    orders_by_channel=sorted(per_channel.items(), key=lambda kv: kv[0].value),
                    last_seen_at=max((s.last_at for s in seen), default=None),
                )
            )
        return out


class JourneyByUserIdLoader(DataLoader[int, Journey]):
    """Per channel the first and last appearance (records or identity links), and the first order."""

    def __init__(
        self, figures: FiguresByUserIdLoader, identities: IdentitiesByUserIdLoader, settings: Settings
    ) -> None:
        super().__init__()
        self.identities = identities
        self.settings = settings
        self.figures = figures

    async def batch_load_fn(self, keys: list[int]) -> list[Journey]:
        people = await self.figures.load_many(keys)
        idents = await self.identities.load_many(keys)
        out = []
        for person, links in zip(people, idents, strict=True):
            seen: dict[Channel, list[datetime]] = {}
            for s in person.spans:
                seen.setdefault(s.channel, []).extend((s.first_at, s.last_at))
            for i in links:
                channel = identity_channel(i.kind, i.namespace, self.settings)
                if channel is not None:
                    seen.setdefault(channel, []).append(i.linked_at)
            first_order: dict[Channel, datetime] = {}
            for f in person.orders:
                held = first_order.get(f.channel)
                first_order[f.channel] = f.first_order_at if held is None else min(held, f.first_order_at)
            presence = sorted(
                (Presence(ch, min(ts), max(ts), first_order.get(ch)) for ch, ts in seen.items()),
                key=lambda p: (p.first_seen_at, p.channel.value),
            )
            out.append(Journey(path=[p.channel for p in presence], channels=presence))
        return out
