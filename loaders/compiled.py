"""A compiled read's prefetch: every relation of a plan read in one statement per database, then
handed to the per-relation loaders (primed), so the resolvers run unchanged and ask nothing more."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from app.cursors import Position
from app.db.engine import Engines
from app.db.types import utcnow
from app.domain import Channel, IdentityKey, IdentityRecord, UserRecord
from app.domain.channel_data import CartRow, EventRow, OrderRow, group_by_ref
from app.domain.entitlements import ConsentEntryRecord
from app.pii import SESSION_KEY as KEYRING
from app.services.channel_data import INTEREST_EVENTS_PER_IDENTITY, as_event, carts
from app.services.portrait import preferences
from app.stores import compiled as store
from app.stores import compiled_sql as queries
from app.stores.compiled_portrait import PortraitQuery, PortraitRows
from app.stores.portrait import SpanRow
from loaders import Loaders
from loaders.channel_data import Page, event_pages, order_pages
from loaders.portrait import PREFERENCE_EVENTS_PER_IDENTITY, PREFERENCE_ORDERS_PER_IDENTITY, Figures

T = TypeVar("T")


@dataclass(frozen=True)
class OrdersArgs:
    channel: Channel | None
    status_code: int | None
    first: int
    before: Position | None


@dataclass(frozen=True)
class EventsArgs:
    channel: Channel | None
    types: tuple[str, ...] | None
    first: int
    before: Position | None


@dataclass(frozen=True)
class Reads:
    """The relations a compiled operation reads for its users (the hub's by name)."""

    hub: frozenset[str] = frozenset()
    cart: bool = False
    interests: bool = False
    portrait: frozenset[str] = frozenset()  # preferences, traits, journey
    orders: tuple[OrdersArgs, ...] = ()
    behavior: tuple[EventsArgs, ...] = ()
    # The answer is built straight from the rows (graphql_schema/compiled/direct.py): only the
    # users and their identities go to the loaders (the roots' checks read them), the rest is kept.
    direct: bool = False


@dataclass
class Rows:
    """A direct read's relations per active user, as the loaders would have been primed."""

    identities: dict[int, list[IdentityRecord]] = field(default_factory=dict)
    consents: dict[int, list[ConsentEntryRecord]] = field(default_factory=dict)
    orders: list[dict[int, Page[OrderRow]]] = field(default_factory=list)  # per `Reads.orders`
    cart: dict[int, list[CartRow]] = field(default_factory=dict)
    placed: dict[int, str] = field(default_factory=dict)  # orders' times as text (ChannelRows.placed)


@dataclass(frozen=True)
class Found:
    """What the root asked for: the owner of an identity key, a page of active users."""

    owner: int | None
    page: list[UserRecord]
    total: int
    rows: Rows | None = None  # with `Reads.direct`
    users: dict[int, UserRecord] = field(default_factory=dict)  # asked id -> active user (direct)


def _in(channels: Sequence[Channel], wanted: Channel | None) -> tuple[Channel, ...]:
    return tuple(c for c in channels if wanted is None or c is wanted)


def _portrait_query(reads: Reads, channels: Sequence[Channel], loaders: Loaders) -> PortraitQuery | None:
    if not reads.portrait:
        return None
    key = (id(loaders.dictionary), tuple(channels), reads.portrait)
    found = _portrait_queries.get(key)
    if found is None or found[0] is not loaders.dictionary:
        if len(_portrait_queries) > 64:
            _portrait_queries.clear()
        found = _portrait_queries[key] = (loaders.dictionary, _portrait_query_of(reads, channels, loaders))
    return found[1]


_portrait_queries: dict[tuple[int, tuple[Channel, ...], frozenset[str]], tuple[Any, PortraitQuery]] = {}


def _portrait_query_of(reads: Reads, channels: Sequence[Channel], loaders: Loaders) -> PortraitQuery:
    """As the portrait loaders read (loaders/portrait.py, app/stores/preferences.py)."""
    d = loaders.dictionary
    rules = d.preferences
    sku_keys = sorted({k for keys in rules.sku_fields.values() for k in keys})
    names = sorted({k for keys in rules.name_fields.values() for k in keys})
    return PortraitQuery(
        channels=tuple(channels),
        figures=bool(reads.portrait & {"traits", "journey"}),
        preferences="preferences" in reads.portrait,
        event_types=tuple(sorted(set(rules.view_events) | set(rules.favorite_events))),
        sku_keys=tuple(sku_keys),
        keys=tuple(dict.fromkeys([*sku_keys, *names])),
        paid=tuple(d.paid_codes()),
        cart_types=tuple(d.cart_types()),
        events_per_ref=PREFERENCE_EVENTS_PER_IDENTITY,
        orders_per_ref=PREFERENCE_ORDERS_PER_IDENTITY,
    )


def _queries(reads: Reads, channels: Sequence[Channel], loaders: Loaders) -> queries.ChannelQueries:
    """What one store is asked for these reads: one object for the same reads (a plan keeps its
    Reads), store channels and dictionary, so the statement written for it is found by identity."""
    found = _channel_queries.get(id(reads))
    if found is not None and found[0] is reads and found[1] is loaders.dictionary:
        by_store = found[2]
    else:
        if len(_channel_queries) >= 256:
            _channel_queries.clear()
        by_store = {}
        _channel_queries[id(reads)] = (reads, loaders.dictionary, by_store)
    asked = by_store.get(id(channels))  # a store's own tuple (an Enum's hash is a Python call)
    if asked is None or asked[0] is not channels:
        asked = by_store[id(channels)] = (channels, _queries_of(reads, channels, loaders))
    return asked[1]


# Reads (held, so that their id stays theirs) -> (dictionary, a store's channels -> its queries).
_channel_queries: dict[
    int, tuple[Reads, Any, dict[int, tuple[Sequence[Channel], queries.ChannelQueries]]]
] = {}


def _queries_of(reads: Reads, channels: Sequence[Channel], loaders: Loaders) -> queries.ChannelQueries:
    return queries.ChannelQueries(
        portrait=_portrait_query(reads, channels, loaders),
        orders=tuple(
            queries.OrderQuery(_in(channels, o.channel), o.status_code, o.before, o.first + 1)
            for o in reads.orders
        ),
        events=tuple(
            queries.EventQuery(_in(channels, e.channel), e.types, e.before, e.first + 1)
            for e in reads.behavior
        )
        + (
            (queries.EventQuery(tuple(channels), None, None, INTEREST_EVENTS_PER_IDENTITY),)
            if reads.interests
            else ()
        ),
        cart=tuple(channels) if reads.cart else (),
        booked=tuple(channels) if reads.interests else (),
        booked_per_ref=INTEREST_EVENTS_PER_IDENTITY,
    )


async def _read(loaders: Loaders, engines: Engines, read: Callable[[store.Target], Awaitable[T]]) -> T:
    """`read` on asyncpg's own connections on PostgreSQL; on the request's shared read session
    elsewhere, and where the engine has listeners on its statements (tracing, tests counting them)."""
    direct = engines.direct
    if direct is not None and not engines.read_engine.sync_engine.dispatch.before_cursor_execute:
        keyring = engines.read_sessions.kw["info"][KEYRING]
        target = _targets.get(id(direct))
        if target is None or target.driver is not direct or target.keyring is not keyring:
            target = _targets[id(direct)] = store.Target(keyring=keyring, pg=True, driver=direct)
        return await read(target)
    async with loaders.reads.session(engines) as session:
        return await read(store.Target.of(session))


# A database's direct target, by its DirectReads (held by the target, so its id stays its own).
_targets: dict[int, store.Target] = {}


async def prefetch(
    loaders: Loaders,
    reads: Reads,
    *,
    ids: Sequence[int] = (),
    key: IdentityKey | None = None,
    page: tuple[int, int | None] | None = None,
) -> Found:
    """Read the roots and `reads` (one statement per database) and prime `loaders` with them."""
    db = loaders.db
    on_hub = db.hub_store
    channel_data = bool(reads.orders or reads.behavior or reads.cart or reads.interests or reads.portrait)
    query = queries.HubQuery(
        ids=tuple(dict.fromkeys(ids)),  # an end user reading themselves: one id
        key=key,
        page=page,
        identities=True,  # authorization and the channel stores' refs need them
        consents="consents" in reads.hub,
        memberships="memberships" in reads.hub,
        points="points" in reads.hub,
        roles="roles" in reads.hub,
        sign_ins=bool(reads.portrait & {"traits", "journey"}),
    )
    here = _queries(reads, on_hub.channels, loaders) if on_hub is not None and channel_data else None
    hub = await _read(loaders, db, lambda target: store.read_hub(target, query, here))
    active = sorted({u.id for u in hub.users.values()})
    if reads.direct:  # the roots take the users and identities from `Found`, not the loaders
        rows = Rows(identities={uid: hub.identities.get(uid, []) for uid in active})
        if query.consents:
            rows.consents = {uid: hub.consents.get(uid, []) for uid in active}
        if channel_data and active:
            await _channel_data(loaders, reads, active, hub, rows)
        return Found(owner=hub.owner, page=hub.page, total=hub.total, rows=rows, users=hub.users)
    for start_id in {*ids, *([hub.owner] if hub.owner is not None else [])}:
        loaders.user_by_id.prime(start_id, hub.users.get(start_id))
    for uid in active:
        loaders.identities_by_user_id.prime(uid, hub.identities.get(uid, []))
        if query.consents:
            loaders.consents_by_user_id.prime(uid, hub.consents.get(uid, []))
        if query.memberships:
            loaders.memberships_by_user_id.prime(uid, hub.memberships.get(uid, []))
        if query.points:
            loaders.points_by_user_id.prime(uid, hub.points.get(uid, 0))
        if query.roles:
            loaders.role_grants_by_user_id.prime(uid, hub.roles.get(uid, []))
    if channel_data and active:
        await _channel_data(loaders, reads, active, hub, None)
    if reads.portrait and active:
        await _portrait(loaders, reads.portrait, active)  # read above: nothing more is asked
    return Found(owner=hub.owner, page=hub.page, total=hub.total)


async def _channel_data(
    loaders: Loaders, reads: Reads, active: list[int], hub: store.HubRows, kept: Rows | None
) -> None:
    by_user = {uid: [i.ref for i in hub.identities.get(uid, [])] for uid in active}
    found = [hub.channel] if hub.channel is not None else []
    refs: list[str] | None = None
    for st in loaders.db.stores:
        if not st.shares_hub:
            if refs is None:  # a database of its own is asked for the identities' refs
                refs = sorted({r for refs in by_user.values() for r in refs})
            asked = _queries(reads, st.channels, loaders)
            read = functools.partial(store.read_channel, q=asked, refs=refs)
            found.append(await _read(loaders, st.engines, read))
    if kept is not None:
        for f in found:
            kept.placed.update(f.placed)
    for n, o in enumerate(reads.orders):
        rows: list[OrderRow] = [r for f in found for r in f.orders[n][0]]
        counts: dict[str, int] = {}
        for f in found:
            for ref, c in f.orders[n][1].items():
                counts[ref] = counts.get(ref, 0) + c
        pages = order_pages(active, by_user, rows, counts, o.first)
        if kept is not None:
            kept.orders.append(dict(zip(active, pages, strict=True)))
            continue
        loader = loaders.orders_by_user_id(
            channel=o.channel, status_code=o.status_code, first=o.first, before=o.before
        )
        for uid, p in zip(active, pages, strict=True):
            loader.prime(uid, p)
    for n, e in enumerate(reads.behavior):
        events: list[EventRow] = [r for f in found for r in f.events[n]]
        bl = loaders.behavior_by_user_id(channel=e.channel, types=e.types, first=e.first, before=e.before)
        for uid, page in zip(active, event_pages(active, by_user, events, e.first), strict=True):
            bl.prime(uid, page)
    if reads.interests:
        n = len(reads.behavior)
        recent: list[EventRow] = [r for f in found for r in f.events[n]]
        recent += [as_event(r) for f in found for r in f.booked]
        weighed = await loaders.interests_by_user_id.weigh(active, by_user, recent)
        for uid, tags in zip(active, weighed, strict=True):
            loaders.interests_by_user_id.prime(uid, tags)
    if reads.portrait:
        _prime_portrait(loaders, reads.portrait, active, by_user, [f.portrait for f in found], hub)
    if reads.cart:
        lines: list[CartRow] = [r for f in found for r in f.cart]
        for uid, cart in zip(active, carts(active, by_user, lines), strict=True):
            if kept is not None:
                kept.cart[uid] = cart
            else:
                loaders.cart_by_user_id.prime(uid, cart)


async def _portrait(loaders: Loaders, fields: frozenset[str], active: list[int]) -> None:
    """Traits and journeys worked out from the primed figures for every user at once (their loaders'
    own batch functions), so the resolvers, called one user after another, find them loaded."""
    if "traits" in fields:
        traits = loaders.traits_by_user_id
        for uid, t in zip(active, await traits.batch_load_fn(active), strict=True):
            traits.prime(uid, t)
    if "journey" in fields:
        journeys = loaders.journey_by_user_id
        for uid, j in zip(active, await journeys.batch_load_fn(active), strict=True):
            journeys.prime(uid, j)


def _prime_portrait(
    loaders: Loaders,
    fields: frozenset[str],
    active: list[int],
    by_user: dict[int, list[str]],
    stores: list[PortraitRows | None],
    hub: store.HubRows,
) -> None:
    """Preferences scored and figures gathered per person as their loaders do, from the rows read."""
    found = [p for p in stores if p is not None]
    if "preferences" in fields:
        ev = group_by_ref([e for p in found for e in p.events])
        od = group_by_ref([o for p in found for o in p.orders])
        ct = group_by_ref([c for p in found for c in p.carts])
        prefs, now, dictionary = loaders.preferences_by_user_id, utcnow(), loaders.dictionary
        for uid in active:
            refs = by_user[uid]
            events = [e for r in refs for e in ev.get(r, [])]
            orders = [o for r in refs for o in od.get(r, [])]
            carts_ = [c for r in refs for c in ct.get(r, [])]
            prefs.prime(uid, preferences(events, orders, carts_, dictionary, now))
    if fields & {"traits", "journey"}:
        spans = [s for p in found for s in p.spans]
        spans += [SpanRow(s.identity_ref, s.channel, s.first_at, s.last_at) for s in hub.sign_ins]
        span_by, fig_by = group_by_ref(spans), group_by_ref([f for p in found for f in p.figures])
        for uid in active:
            refs = by_user[uid]
            loaders.figures_by_user_id.prime(
                uid,
                Figures(
                    [x for r in refs for x in span_by.get(r, [])],
                    [f for r in refs for f in fig_by.get(r, [])],
                ),
            )
