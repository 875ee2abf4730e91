"""Live audience membership: a follower of the outbox keeps every saved audience's members.

For the users each batch of changes touched (a merge's survivor too), every saved audience is
evaluated again restricted to them (one SQL statement each, in one hub session per batch that
reads the survivors, the identity refs and the kept members once for all audiences), and who
entered or left is applied to the kept membership, recorded as events and announced in the
outbox (topic AUDIENCE), all in one transaction that also moves the follower's cursor, from
the cursor it read, or not at all.
Several instances may run the follower; one at a time leads (a PostgreSQL advisory lock held on
a connection of its own; SQLite has one writer, in process). The cursor's compare-and-set keeps
a batch from being applied twice even if two ever ran at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.background import spawn
from app.db.engine import Database
from app.db.models import Audience
from app.db.types import utcnow
from app.ingest.dictionary import DataDictionary
from app.services.audience_eval import hub_reads, members_among, refs_of
from app.services.audiences import Audiences
from app.services.changes import Topic, record_changes
from app.settings import Settings
from app.stores import audience_members as members
from app.stores import changes as outbox
from app.stores import identity as identity_store
from app.sync.feed import ChangeFeed

log = logging.getLogger("troika.audiences")

LEADER_LOCK = 0x7472_6F69_6B62  # the leader's advisory lock; any constant all instances share
PAGE = 1000
STANDBY_SECONDS = 1.0
# The longest the leader waits for the feed before reading the outbox itself: a wake-up can come
# a moment before the change it announces is readable, and the feed may poll rarely.
IDLE_SECONDS = 1.0


# Which changes can move a person in or out of a condition's leaf. A change of any other topic
# (IDENTITY, MERGE, ERASURE, and any new one) re-evaluates every audience for that person.
_LEAF_TOPICS: dict[str, frozenset[str]] = {
    "orders": frozenset({Topic.ORDER}),
    "behavior": frozenset({Topic.BEHAVIOR}),
    "reservations": frozenset({Topic.RESERVATION}),
    "identity": frozenset({Topic.BEHAVIOR}),  # the official account's subscribe and unsubscribe
    "membership": frozenset({Topic.MEMBERSHIP}),
    "interest": frozenset({Topic.BEHAVIOR, Topic.RESERVATION, Topic.ORDER}),
    "cart": frozenset({Topic.CART}),
    "consent": frozenset({Topic.CONSENT}),
}
LEAF_TOPICS = frozenset().union(*_LEAF_TOPICS.values())


def topics_of(condition: Any) -> set[str]:
    """The leaf topics a saved condition reads (an unknown leaf: all of them)."""
    out: set[str] = set()
    if isinstance(condition, list):
        for part in condition:
            out |= topics_of(part)
        return out
    if not isinstance(condition, dict):
        return out
    for key, value in condition.items():
        if key in ("all", "any", "not"):
            out |= topics_of(value)
        else:
            out |= _LEAF_TOPICS.get(key, LEAF_TOPICS)
    return out


@dataclass(frozen=True, slots=True)
class _Saved:
    id: int
    condition: dict[str, Any]
    updated_at: datetime
    live_from: int | None


@dataclass
class _Plan:
    audience: _Saved
    entered: set[int]
    left: set[int]


class LiveAudiences:
    """Follows the outbox and keeps saved audiences' members; `catch_up` brings them up to date now."""

    def __init__(
        self, db: Database, dictionary: DataDictionary, settings: Settings, feed: ChangeFeed
    ) -> None:
        self.db, self.settings, self.feed = db, settings, feed
        self.service = Audiences(db, dictionary, settings)
        self.leading = False
        self.batches = 0  # batches this instance applied
        # No audience was saved when last looked: a save is evaluated whole (and its live_from
        # covers what happens until the follower's next batch), so the leader only catches up on
        # its poll then, not on every write's ring.
        self.unsaved = False
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._held: AsyncConnection | None = None

    def start(self) -> None:
        if self.settings.audience_live and self._task is None:
            self._task = spawn(self._run(), name="audience-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                async with self._leadership():
                    await self._lead()
            except Exception:  # the database away, the lock's connection lost: stand by again
                log.exception("audience follower stopped; standing by")
            await asyncio.sleep(STANDBY_SECONDS)

    @contextlib.asynccontextmanager
    async def _leadership(self) -> AsyncIterator[None]:
        """Held while this instance leads: a session advisory lock on PostgreSQL, nothing on SQLite."""
        if self.db.is_sqlite:
            self.leading = True
            try:
                yield
            finally:
                self.leading = False
            return
        async with self.db.write_engine.connect() as conn:
            while True:
                got = (
                    await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK})
                ).scalar()
                await conn.commit()
                if got:
                    break
                await asyncio.sleep(STANDBY_SECONDS)
            self._held, self.leading = conn, True
            try:
                yield
            finally:
                self._held, self.leading = None, False
                with contextlib.suppress(Exception):
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LEADER_LOCK})
                    await conn.commit()

    async def _lead(self) -> None:
        refresh = self.settings.audience_refresh_seconds
        refreshed = time.monotonic()
        await self.feed.start()  # its reads of the outbox wake us up; we read from our own cursor
        idle = min(self.settings.changes_poll_seconds, IDLE_SECONDS)
        while True:
            self.feed.advanced.clear()
            await self.catch_up()
            if refresh > 0 and time.monotonic() - refreshed >= refresh:
                await self.refresh()
                refreshed = time.monotonic()
            try:
                if self.unsaved:  # nothing to keep: the cursor need not follow every write
                    await asyncio.sleep(idle)
                    raise TimeoutError
                await asyncio.wait_for(self.feed.advanced.wait(), idle)
            except TimeoutError:
                if self._held is not None:  # still leading: the lock's connection is alive
                    await self._held.execute(text("SELECT 1"))
                    await self._held.commit()

    async def catch_up(self) -> int:
        """Apply every batch of the outbox past the follower's cursor; returns how many were applied."""
        applied = 0
        async with self._lock:
            while True:
                async with self.db.read_sessions() as session:
                    cursor = await members.follower_cursor(session)
                    saved = await _saved(session)
                    self.unsaved = not saved
                    # No saved audience: nothing to evaluate, the cursor only moves to the end
                    # (a write's batch costs one read and one UPDATE, not a page of rows and plans).
                    rows = await outbox.after(session, cursor, limit=PAGE) if saved else []
                    end = rows[-1].cursor if rows else cursor
                    if not saved:
                        end = max(end, await outbox.last_cursor(session))
                if end == cursor and not any(a.live_from is not None for a in saved):
                    return applied
                new = end
                touched: dict[str, set[int]] = {}
                for r in rows:
                    if r.topic != Topic.AUDIENCE:
                        touched.setdefault(r.topic, set()).add(r.user_id)
                if await self._apply(cursor, new, touched, saved):
                    applied += 1
                    self.batches += 1
                if len(rows) < PAGE:
                    return applied

    async def _apply(self, old: int, new: int, touched: dict[str, set[int]], saved: list[_Saved]) -> bool:
        plans = await self._plans(new, touched, saved)
        async with self.db.write_sessions() as session, session.begin():
            if not await members.advance(session, old, new):
                return False  # another follower applied this batch
            current = await _locked(session, [a.id for a in saved])
            moved: set[int] = set()
            for plan in plans:
                a = plan.audience
                if current.get(a.id) != a.updated_at:
                    continue  # saved again or deleted meanwhile: that save evaluated it whole
                await self.service.move(session, a.id, plan.entered, plan.left, events=True, announce=False)
                moved |= plan.entered | plan.left
                if a.live_from is not None:
                    await session.execute(update(Audience).where(Audience.id == a.id).values(live_from=None))
            # One announcement (and data version bump) per person, however many audiences moved them.
            await record_changes(session, [(u, Topic.AUDIENCE) for u in moved])
        return True

    async def _plans(self, new: int, touched: dict[str, set[int]], saved: list[_Saved]) -> list[_Plan]:
        """Who enters and leaves each saved audience, in one hub session: the touched users, their
        survivors, identity refs and kept memberships read once for every audience of the batch."""
        if not saved:
            return []
        now = utcnow()
        async with hub_reads(self.db) as session:
            everyone = set().union(*touched.values()) if touched else set()
            survivors = await _survivors(session, everyone)
            users_of: dict[int, set[int]] = {}
            for audience in saved:
                relevant = topics_of(audience.condition)
                users = set().union(
                    *(ids for topic, ids in touched.items() if topic in relevant or topic not in LEAF_TOPICS)
                )
                users |= {survivors[u] for u in users if u in survivors}
                if audience.live_from is not None and audience.live_from < new:
                    gap = await members.touched_between(session, audience.live_from, new)
                    users |= gap | set((await _survivors(session, gap)).values())
                users_of[audience.id] = users
            union = set().union(*users_of.values()) if users_of else set()
            if not union:
                return [_Plan(a, set(), set()) for a in saved]
            refs = await refs_of(session, sorted(union))
            kept = await members.kept_among(session, [a.id for a in saved], sorted(union))
            plans: list[_Plan] = []
            for audience in saved:
                users = users_of[audience.id]
                if not users:
                    plans.append(_Plan(audience, set(), set()))
                    continue
                now_in = await members_among(
                    session,
                    self.db,
                    self.service.dictionary,
                    self.settings,
                    self.service.parse(audience.condition),
                    now=now,
                    user_ids=sorted(users),
                    refs=[r for u in sorted(users) for r in refs.get(u, ())],
                )
                before = kept.get(audience.id, set()) & users
                plans.append(_Plan(audience, now_in - before, before - now_in))
        return plans

    async def _plan(self, audience: _Saved) -> _Plan:
        """Who enters and leaves the whole audience."""
        now_in = await self.service.evaluate(audience.condition, None)
        async with self.db.read_sessions() as session:
            before = await members.kept(session, audience.id, None)
        return _Plan(audience, now_in - before, before - now_in)

    async def refresh(self) -> int:
        """Evaluate every saved audience whole again (the clock moves "within N days"); how many moved."""
        moved = 0
        async with self._lock:
            async with self.db.read_sessions() as session:
                saved = await _saved(session)
            for audience in saved:
                plan = await self._plan(audience)
                if not plan.entered and not plan.left:
                    continue
                async with self.db.write_sessions() as session, session.begin():
                    if (await _locked(session, [audience.id])).get(audience.id) != audience.updated_at:
                        continue
                    moved += await self.service.move(
                        session, audience.id, plan.entered, plan.left, events=True
                    )
        return moved

    def stats(self) -> dict[str, Any]:
        return {"leading": self.leading, "batches": self.batches}


async def _survivors(session: Any, users: set[int]) -> dict[int, int]:
    """Whom each of these users resolves to now (an absorbed user's survivor: members are persons)."""
    if not users:
        return {}
    found = await identity_store.resolve_users(session, sorted(users))
    return {u: record.id for u, record in found.items()}


async def _saved(session: Any) -> list[_Saved]:
    stmt = select(Audience.id, Audience.condition, Audience.updated_at, Audience.live_from).order_by(
        Audience.id
    )
    return [_Saved(r.id, r.condition, r.updated_at, r.live_from) for r in (await session.execute(stmt)).all()]


async def _locked(session: Any, ids: list[int]) -> dict[int, datetime]:
    """The audiences' versions, locked until the transaction ends (a save waits, and is seen)."""
    if not ids:
        return {}
    stmt = select(Audience.id, Audience.updated_at).where(Audience.id.in_(ids)).with_for_update()
    return {r.id: r.updated_at for r in (await session.execute(stmt)).all()}
