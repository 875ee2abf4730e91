"""Channel-data loaders: each batch asks every store database once, for every user of the batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Generic, TypeVar

from aiodataloader import DataLoader

from app.cursors import Position, encode_cursor
from app.db.engine import Database, Engines
from app.db.shared import SharedReads
from app.domain import Channel
from app.domain.channel_data import CartRow, EventRow, Interest, OrderRow, ReservationRow, group_by_ref
from app.ingest.dictionary import DataDictionary
from app.services.channel_data import INTEREST_EVENTS_PER_IDENTITY, as_event, carts, interests
from app.stores import channel as store
from app.stores import official_account as oa_store
from loaders.identity import IdentitiesByUserIdLoader

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    nodes: list[T]
    has_next_page: bool
    end_cursor: str | None
    total_count: int


class _PerUser:
    """Shared plumbing: a user's channel identities, and the stores to ask."""

    def __init__(
        self,
        db: Database,
        identities: IdentitiesByUserIdLoader,
        channel: Channel | None,
        reads: SharedReads | None,
    ) -> None:
        self.db = db
        self.identities = identities
        self.channel = channel
        self.reads = reads or SharedReads(shared=False)

    async def refs(self, keys: Sequence[int]) -> tuple[dict[int, list[str]], list[str]]:
        lists = await self.identities.load_many(list(keys))
        by_user = {uid: [i.ref for i in idents] for uid, idents in zip(keys, lists, strict=True)}
        return by_user, sorted({r for refs in by_user.values() for r in refs})

    def stores(self) -> list[tuple[Engines, list[Channel]]]:
        out: list[tuple[Engines, list[Channel]]] = []
        for st in self.db.stores:
            channels = [c for c in st.channels if self.channel is None or c is self.channel]
            if channels:
                out.append((st.engines, channels))
        return out


def _page(rows: list[T], first: int, total: int, position: Callable[[T], str]) -> Page[T]:
    nodes = rows[:first]
    end = position(nodes[-1]) if nodes else None
    return Page(nodes=nodes, has_next_page=len(rows) > first, end_cursor=end, total_count=total)


class OrdersByUserIdLoader(DataLoader[int, Page[OrderRow]]):
    """A page of a user's orders across channels, newest first, with the total."""

    def __init__(
        self,
        db: Database,
        identities: IdentitiesByUserIdLoader,
        *,
        channel: Channel | None,
        status_code: int | None,
        first: int,
        before: Position | None,
        reads: SharedReads | None = None,
    ) -> None:
        super().__init__()
        self.base = _PerUser(db, identities, channel, reads)
        self.status_code, self.first, self.before = status_code, first, before

    async def batch_load_fn(self, keys: list[int]) -> list[Page[OrderRow]]:
        by_user, refs = await self.base.refs(keys)
        rows: list[OrderRow] = []
        counts: dict[str, int] = {}
        for engines, channels in self.base.stores():
            async with self.base.reads.session(engines) as session:
                found, found_counts = await store.orders_for_refs(
                    session,
                    channels=channels,
                    refs=refs,
                    status_code=self.status_code,
                    before=self.before,
                    per_ref=self.first + 1,
                )
                rows += found
                if found_counts is None:
                    found_counts = await store.order_counts(
                        session, channels=channels, refs=refs, status_code=self.status_code
                    )
                for ref, n in found_counts.items():
                    counts[ref] = counts.get(ref, 0) + n
        return order_pages(keys, by_user, rows, counts, self.first)


class ReservationsByUserIdLoader(DataLoader[int, Page[ReservationRow]]):
    """A page of a user's reservations across channels, newest booking first, with the total."""

    def __init__(
        self,
        db: Database,
        identities: IdentitiesByUserIdLoader,
        *,
        status_code: int | None,
        first: int,
        before: Position | None,
        reads: SharedReads | None = None,
    ) -> None:
        super().__init__()
        self.base = _PerUser(db, identities, None, reads)
        self.status_code, self.first, self.before = status_code, first, before

    async def batch_load_fn(self, keys: list[int]) -> list[Page[ReservationRow]]:
        by_user, refs = await self.base.refs(keys)
        rows: list[ReservationRow] = []
        counts: dict[str, int] = {}
        for engines, channels in self.base.stores():
            async with self.base.reads.session(engines) as session:
                found, found_counts = await store.reservations_for_refs(
                    session,
                    channels=channels,
                    refs=refs,
                    status_code=self.status_code,
                    before=self.before,
                    per_ref=self.first + 1,
                )
                rows += found
                if self.before is not None:  # past a cursor the counts are of what is left
                    _, found_counts = await store.reservations_for_refs(
                        session,
                        channels=channels,
                        refs=refs,
                        status_code=self.status_code,
                        before=None,
                        per_ref=1,
                    )
                for ref, n in found_counts.items():
                    counts[ref] = counts.get(ref, 0) + n
        by_ref = group_by_ref(rows)
        pages = []
        for uid in keys:
            mine = sorted(
                (r for ref in by_user[uid] for r in by_ref.get(ref, [])),
                key=lambda r: (r.booked_at, r.channel, r.id),
                reverse=True,
            )
            total = sum(counts.get(ref, 0) for ref in by_user[uid])
            pages.append(
                _page(mine, self.first, total, lambda r: encode_cursor(r.booked_at, r.channel.value, r.id))
            )
        return pages


class BehaviorByUserIdLoader(DataLoader[int, Page[EventRow]]):
    """A page of a user's behaviour events across channels, newest first."""

    def __init__(
        self,
        db: Database,
        identities: IdentitiesByUserIdLoader,
        *,
        channel: Channel | None,
        types: tuple[str, ...] | None,
        first: int,
        before: Position | None,
        reads: SharedReads | None = None,
    ) -> None:
        super().__init__()
        self.base = _PerUser(db, identities, channel, reads)
        self.types, self.first, self.before = types, first, before

    async def batch_load_fn(self, keys: list[int]) -> list[Page[EventRow]]:
        by_user, refs = await self.base.refs(keys)
        rows: list[EventRow] = []
        for engines, channels in self.base.stores():
            async with self.base.reads.session(engines) as session:
                rows += await store.events_for_refs(
                    session,
                    channels=channels,
                    refs=refs,
                    types=self.types,
                    before=self.before,
                    per_ref=self.first + 1,
                )
        return event_pages(keys, by_user, rows, self.first)


class CartByUserIdLoader(DataLoader[int, list[CartRow]]):
    """The unified cart: one line per SKU, the latest change across channels wins, zero removes."""

    def __init__(
        self, db: Database, identities: IdentitiesByUserIdLoader, reads: SharedReads | None = None
    ) -> None:
        super().__init__()
        self.base = _PerUser(db, identities, None, reads)

    async def batch_load_fn(self, keys: list[int]) -> list[list[CartRow]]:
        by_user, refs = await self.base.refs(keys)
        rows: list[CartRow] = []
        for engines, channels in self.base.stores():
            async with self.base.reads.session(engines) as session:
                rows += await store.cart_for_refs(session, channels=channels, refs=refs)
        return carts(keys, by_user, rows)


class InterestsByUserIdLoader(DataLoader[int, list[Interest]]):
    """Weighted tags from recent behaviour, by the dictionary's interest rules, recent counting more."""

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
        # Users whose interests draw on official-account articles: tags operators may change at any
        # time, which no user's data version follows (their responses are not cached).
        self.from_articles: set[int] = set()

    async def batch_load_fn(self, keys: list[int]) -> list[list[Interest]]:
        by_user, refs = await self.base.refs(keys)
        rows: list[EventRow] = []
        for engines, channels in self.base.stores():
            async with self.base.reads.session(engines) as session:
                rows += await store.events_for_refs(
                    session,
                    channels=channels,
                    refs=refs,
                    types=None,
                    before=None,
                    per_ref=INTEREST_EVENTS_PER_IDENTITY,
                )
                booked, _ = await store.reservations_for_refs(
                    session,
                    channels=channels,
                    refs=refs,
                    status_code=None,
                    before=None,
                    per_ref=INTEREST_EVENTS_PER_IDENTITY,
                )
                rows += [as_event(r) for r in booked]
        return await self.weigh(keys, by_user, rows)

    async def weigh(
        self, keys: Sequence[int], by_user: dict[int, list[str]], rows: list[EventRow]
    ) -> list[list[Interest]]:
        """Interests of these rows (read here or by the compiled path), the articles' tags looked up."""
        by_ref = group_by_ref(rows)
        tags = await self._article_tags(rows)
        self.from_articles.update(
            uid
            for uid in keys
            if any("article" in e.properties for ref in by_user[uid] for e in by_ref.get(ref, []))
        )
        return interests(keys, by_user, rows, self.dictionary, tags)

    async def _article_tags(self, rows: list[EventRow]) -> dict[str, list[str]]:
        """The editorial tags of the official-account articles these events name (read, commented)."""
        ids = {
            str(e.properties["article"]) for e in rows if isinstance(e.properties.get("article"), str | int)
        }
        if not ids:
            return {}
        engines = self.base.db.store_for(Channel.OFFICIAL_ACCOUNT).engines
        async with self.base.reads.session(engines) as session:
            return await oa_store.tags_of(session, sorted(ids))


# What a batch makes of the rows it read; the compiled read path (loaders/compiled.py) reads the
# same rows in one statement per database and hands them to these same functions.


_NEWEST_ORDER = attrgetter("placed_at", "channel", "id")  # (placed_at, channel, id), in C


def order_pages(
    keys: Sequence[int],
    by_user: dict[int, list[str]],
    rows: list[OrderRow],
    counts: dict[str, int],
    first: int,
) -> list[Page[OrderRow]]:
    """Each user's orders of every identity, newest first, cut to a page."""
    by_ref = group_by_ref(rows)
    pages = []
    for uid in keys:
        mine = sorted((o for r in by_user[uid] for o in by_ref.get(r, [])), key=_NEWEST_ORDER, reverse=True)
        total = sum(counts.get(ref, 0) for ref in by_user[uid])
        pages.append(_page(mine, first, total, lambda o: encode_cursor(o.placed_at, o.channel.value, o.id)))
    return pages


def event_pages(
    keys: Sequence[int], by_user: dict[int, list[str]], rows: list[EventRow], first: int
) -> list[Page[EventRow]]:
    """Each user's events of every identity, newest first, cut to a page."""
    by_ref = group_by_ref(rows)
    pages = []
    for uid in keys:
        mine = sorted(
            (e for ref in by_user[uid] for e in by_ref.get(ref, [])),
            key=lambda e: (e.occurred_at, e.channel, e.id),
            reverse=True,
        )
        pages.append(_page(mine, first, -1, lambda e: encode_cursor(e.occurred_at, e.channel.value, e.id)))
    return pages
