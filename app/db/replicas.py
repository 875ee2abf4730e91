"""Read replicas of the hub (TROIKA_DATABASE_REPLICA_URLS): GraphQL queries read a replica.

Guarantees: mutations, subscriptions, ingestion and every write use the primary; a query reads a
replica only while it answers and lags at most TROIKA_REPLICA_MAX_LAG_SECONDS (checked every
second, so one that fails or falls behind is taken out and comes back once caught up); an end user
reads their own writes (the replica's data version of the caller's user must equal the primary's,
else the primary answers); an API key that ran a mutation on this instance within the lag bound
reads the primary. Channel stores in databases of their own are read where they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time

from prometheus_client import Counter, Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from app.background import spawn
from app.db.engine import Database
from app.settings import Settings

CHECK_SECONDS = 1.0
LAG = text(
    "SELECT pg_is_in_recovery(), CASE"
    " WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
    " ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END"
)
VERSION = text("SELECT data_version FROM users WHERE id = :id")
READS = Counter(
    "troika_db_query_reads", "GraphQL queries by where they read: replica or primary.", ["target"]
)
REPLICA_UP = Gauge(
    "troika_db_replica_in_rotation",
    "1 while a replica serves reads.",
    ["replica"],
    multiprocess_mode="livemin",
)
REPLICA_LAG = Gauge(
    "troika_db_replica_lag_seconds", "A replica's replay lag.", ["replica"], multiprocess_mode="livemax"
)
log = logging.getLogger("troika.replicas")
_BY_DATABASE: dict[int, Replicas] = {}  # the app's hub -> its replicas (one app a process)


@dataclasses.dataclass
class Replica:
    name: str
    engine: AsyncEngine
    view: Database  # the hub, reading on this replica
    in_rotation: bool = False
    lag: float = 0.0


class Replicas:
    """The hub's replicas, their health, and which one a query reads."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.max_lag = settings.replica_max_lag_seconds
        self.timeout = settings.readiness_timeout_seconds
        self.replicas: list[Replica] = []
        for i, url in enumerate(u.strip() for u in settings.database_replica_urls.split(",") if u.strip()):
            engine = create_async_engine(url, pool_size=10, max_overflow=10)
            reader = engine.execution_options(isolation_level="AUTOCOMMIT")
            sessions = async_sessionmaker(reader, expire_on_commit=False, info=db.read_sessions.kw["info"])
            view = dataclasses.replace(
                db, read_engine=reader, read_sessions=sessions, direct=None, direct_writes=None
            )
            self.replicas.append(Replica(f"replica-{i}", engine, view))
        self.writers: dict[str, float] = {}  # API keys' last mutation on this instance
        self._turn = itertools.count()
        self._task: asyncio.Task[None] | None = None
        _BY_DATABASE[id(db)] = self

    @staticmethod
    def of(db: Database) -> Replicas | None:
        return _BY_DATABASE.get(id(db))

    def start(self) -> None:
        if self._task is None:
            self._task = spawn(self._watch(), name="replica-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for replica in self.replicas:
            await replica.engine.dispose()
        _BY_DATABASE.pop(id(self.db), None)

    async def _watch(self) -> None:
        while True:
            await asyncio.gather(*(self.check(r) for r in self.replicas))
            await asyncio.sleep(CHECK_SECONDS)

    async def check(self, replica: Replica) -> None:
        """Put `replica` in rotation when it answers as a standby within the lag bound, else out."""
        was = replica.in_rotation
        try:
            async with asyncio.timeout(self.timeout), replica.engine.connect() as conn:
                _standby, lag = (await conn.execute(LAG)).one()
            replica.lag = float(lag or 0)
            replica.in_rotation = replica.lag <= self.max_lag
        except Exception as exc:  # down, refusing, or too slow: out until it answers again  # noqa: BLE001
            replica.in_rotation = False
            if was:
                log.warning("%s taken out of rotation: %s", replica.name, type(exc).__name__)
        else:
            if was != replica.in_rotation:
                log.warning(
                    "%s %s rotation (lag %.1f s)",
                    replica.name,
                    "in" if replica.in_rotation else "out of",
                    replica.lag,
                )
        REPLICA_UP.labels(replica=replica.name).set(1 if replica.in_rotation else 0)
        REPLICA_LAG.labels(replica=replica.name).set(replica.lag)

    def wrote(self, actor: str) -> None:
        self.writers[actor] = time.monotonic()

    async def for_query(self, actor: str | None, user_id: int | None) -> Database:
        """Where a query reads: a replica in rotation holding the caller's writes, else the primary."""
        self.start()
        choice = await self._choose(actor, user_id)
        READS.labels(target="primary" if choice is self.db else "replica").inc()
        return choice

    async def _choose(self, actor: str | None, user_id: int | None) -> Database:
        live = [r for r in self.replicas if r.in_rotation]
        if not live:
            return self.db
        if actor is not None and time.monotonic() - self.writers.get(actor, float("-inf")) < self.max_lag:
            return self.db
        replica = live[next(self._turn) % len(live)]
        if user_id is None:
            return replica.view
        try:
            async with asyncio.timeout(self.timeout):
                async with self.db.read_engine.connect() as conn:
                    primary = (await conn.execute(VERSION, {"id": user_id})).scalar()
                async with replica.view.read_engine.connect() as conn:
                    mirrored = (await conn.execute(VERSION, {"id": user_id})).scalar()
        except Exception:  # the replica failed here: the primary answers, the watcher takes it out  # noqa: BLE001
            replica.in_rotation = False
            return self.db
        return replica.view if mirrored == primary else self.db
