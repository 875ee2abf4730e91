"""Gauges read from the running parts (pools, change feed, response cache) every few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from app.background import spawn
from app.db.engine import Database
from app.jobs.runner import Jobs
from app.observability import metrics
from app.response_cache import ResponseCache
from app.sync.feed import ChangeFeed

REFRESH_SECONDS = 5.0
JOB_STATUSES = ("todo", "doing", "succeeded", "failed", "cancelled", "aborted")
log = logging.getLogger("troika.metrics")


def _pools(db: Database) -> dict[str, AsyncEngine]:
    pools: dict[str, AsyncEngine] = {"hub": db.write_engine}
    if db.read_engine.pool is not db.write_engine.pool:
        pools["hub-read"] = db.read_engine
    for store in db.stores:
        if not store.shares_hub:
            pools["store:" + "+".join(c.value.lower() for c in store.channels)] = store.engines.write_engine
    return pools


def _waiting(pool: QueuePool) -> int:
    """Tasks blocked on the pool's queue (asyncio's getters); 0 where the pool hides it."""
    queue = getattr(getattr(pool, "_pool", None), "_queue", None)
    return len(getattr(queue, "_getters", ()) or ())


class Refresher:
    """Keeps this worker's gauges current, so a scrape of any worker sums fresh values."""

    def __init__(
        self, db: Database, feed: ChangeFeed, cache: ResponseCache | None, jobs: Jobs | None = None
    ) -> None:
        self.db, self.feed, self.cache, self.jobs = db, feed, cache, jobs
        self.pools = _pools(db)
        self.hits = self.misses = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = spawn(self._loop(), name="metrics-gauges")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # a database away shows in /readyz; the gauges keep their values
                log.warning("metrics refresh failed", exc_info=False)
            await asyncio.sleep(REFRESH_SECONDS)

    async def refresh(self) -> None:
        for name, engine in self.pools.items():
            pool = engine.pool
            if isinstance(pool, QueuePool):
                metrics.POOL_IN_USE.labels(pool=name).set(pool.checkedout())
                metrics.POOL_WAITING.labels(pool=name).set(_waiting(pool))
                metrics.POOL_SIZE.labels(pool=name).set(pool.size())
        metrics.SUBSCRIPTIONS_ACTIVE.set(self.feed.stats()["listeners"])
        if self.cache is not None:
            metrics.CACHE_HITS.inc(self.cache.hits - self.hits)
            metrics.CACHE_MISSES.inc(self.cache.misses - self.misses)
            self.hits, self.misses = self.cache.hits, self.cache.misses
        newest = await self.feed.last_cursor()
        metrics.OUTBOX_LAG.set(max(0, newest - self.feed.last))
        # Only a queue the app opened itself: opening it here, in a task cancelled at shutdown,
        # could leave its connection pool half open.
        if self.jobs is not None and getattr(self.jobs, "_opened", False):
            queues = await self.jobs.queue.job_manager.list_queues_async()
            for queue in queues:
                for status in JOB_STATUSES:
                    metrics.JOBS.labels(queue=queue["name"], status=status).set(queue[status])
