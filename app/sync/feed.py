"""The change feed of one instance: follows the outbox and hands each change to its listeners.

The outbox is the record; a listener's queue is only the fast path. Every delivery goes by
cursor: a listener that starts from a cursor first reads the outbox after it, then takes live
changes after the last one it read (no gap, no duplicate at the seam), and a listener that
falls behind (its queue fills) simply goes back to reading the outbox from its own cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

from app.background import spawn
from app.db.engine import Database
from app.domain.changes import ChangeRow
from app.stores import changes as outbox
from app.sync.bus import Doorbell

log = logging.getLogger("troika.sync")


class Listener:
    """One subscription's view of the feed: all changes, or those of some users."""

    def __init__(self, feed: ChangeFeed, user_ids: Iterable[int] | None, queue_size: int) -> None:
        self.feed = feed
        self.user_ids: set[int] | None = None if user_ids is None else set(user_ids)
        self.queue: asyncio.Queue[ChangeRow] = asyncio.Queue(queue_size)
        self.behind = False

    def offer(self, row: ChangeRow) -> None:
        if self.behind:
            return
        try:
            self.queue.put_nowait(row)
        except asyncio.QueueFull:
            self.behind = True  # the reader will catch up from the outbox

    def watch(self, user_ids: Iterable[int]) -> None:
        """Follow these users instead (after a merge, the survivor too), from the current cursor:
        what the new ones did meanwhile is read from the outbox."""
        self.feed.unregister(self)
        self.user_ids = set(user_ids)
        self.feed.register(self)
        self.behind = True

    async def follow(self, after: int) -> AsyncIterator[ChangeRow]:
        """Every change after `after`, in cursor order, then live, forever."""
        cursor = after
        # Registered before this runs: everything after the feed's own cursor reaches the queue.
        caught_up = cursor >= self.feed.last
        while True:
            # From the outbox until it has nothing newer; the queue has been filling meanwhile.
            self.behind = False
            while not caught_up:
                rows = await self.feed.read(cursor, self.user_ids)
                for row in rows:
                    cursor = row.cursor
                    yield row
                caught_up = len(rows) < self.feed.page
            caught_up = False  # next time round, we will have fallen behind
            while not self.behind:
                row = await self.queue.get()
                if row.cursor > cursor and (self.user_ids is None or row.user_id in self.user_ids):
                    cursor = row.cursor
                    yield row
            while not self.queue.empty():  # fallen behind: the outbox has all of it
                self.queue.get_nowait()


class ChangeFeed:
    """Reads the outbox after its cursor whenever the doorbell rings (or every `poll_seconds`)."""

    def __init__(
        self,
        db: Database,
        doorbell: Doorbell,
        *,
        poll_seconds: float = 0.5,
        page: int = 1000,
        queue_size: int = 1000,
    ) -> None:
        self.db = db
        self.doorbell = doorbell
        self.poll_seconds = poll_seconds
        self.page = page
        self.queue_size = queue_size
        self.last = 0
        self.by_user: dict[int, set[Listener]] = {}
        self.everyone: set[Listener] = set()
        self.listeners_changed = asyncio.Event()  # set when a listener comes or goes: readiness to wait on
        self.advanced = asyncio.Event()  # set whenever new rows were read (the audience follower waits on it)
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Lock()

    async def start(self) -> None:
        """Begin following at the outbox's current end (idempotent)."""
        async with self._started:
            if self._task is None:
                async with self.db.read_engine.connect() as conn:
                    self.last = await outbox.last_cursor(conn)
                self.doorbell.start()
                self._task = spawn(self._follow(), name="change-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.doorbell.stop()

    @contextlib.asynccontextmanager
    async def listen(self, user_ids: Iterable[int] | None = None) -> AsyncIterator[Listener]:
        """A listener registered for the duration of the block (all changes when `user_ids` is None)."""
        await self.start()
        listener = Listener(self, user_ids, self.queue_size)
        self.register(listener)
        try:
            yield listener
        finally:
            self.unregister(listener)

    def register(self, listener: Listener) -> None:
        self.listeners_changed.set()
        if listener.user_ids is None:
            self.everyone.add(listener)
        for user_id in listener.user_ids or ():
            self.by_user.setdefault(user_id, set()).add(listener)

    def unregister(self, listener: Listener) -> None:
        self.listeners_changed.set()
        self.everyone.discard(listener)
        for user_id in listener.user_ids or ():
            group = self.by_user.get(user_id)
            if group is not None:
                group.discard(listener)
                if not group:
                    del self.by_user[user_id]

    async def read(self, after: int, user_ids: set[int] | None = None) -> list[ChangeRow]:
        """A page of committed changes after `after` (of these users only, if given)."""
        async with self.db.read_engine.connect() as conn:
            return await outbox.after(conn, after, limit=self.page, user_ids=user_ids)

    async def first_cursor(self) -> int | None:
        async with self.db.read_engine.connect() as conn:
            return await outbox.first_cursor(conn)

    async def last_cursor(self) -> int:
        async with self.db.read_engine.connect() as conn:
            return await outbox.last_cursor(conn)

    async def _follow(self) -> None:
        while True:
            rung = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.doorbell.wake.wait(), self.poll_seconds)
                rung = True
            self.doorbell.wake.clear()
            if rung and self._unheeded():
                continue
            try:
                await self._catch_up()
            except Exception:  # the database may be briefly away; the next round retries
                log.exception("reading the outbox failed; retrying")
                await asyncio.sleep(self.poll_seconds)

    async def _catch_up(self) -> None:
        while True:
            rows = await self.read(self.last)
            for row in rows:
                self._dispatch(row)
                self.last = row.cursor
            if rows:
                self.advanced.set()
            if len(rows) < self.page:
                return

    def _unheeded(self) -> bool:
        """No listener here: the rows a ring announced go to nobody, so the feed only moves to the
        cursor heard (the audience follower reads the outbox itself, a listener that comes reads
        it from its own cursor, and every poll still reads it). Saves a read of the outbox per
        write in every instance with no subscription."""
        if self.everyone or self.by_user:
            return False
        if self.doorbell.heard > self.last:
            self.last = self.doorbell.heard
            self.advanced.set()
        return True

    def _dispatch(self, row: ChangeRow) -> None:
        for listener in self.everyone:
            listener.offer(row)
        for listener in self.by_user.get(row.user_id, ()):
            listener.offer(row)

    def stats(self) -> dict[str, Any]:
        return {"cursor": self.last, "listeners": len(self.everyone) + sum(map(len, self.by_user.values()))}
