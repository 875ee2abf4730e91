"""Engines and sessionmakers: a write path that serializes on SQLite, a read path that never blocks."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable
from contextlib import closing
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from app.db.direct import DirectReads
from app.domain import Channel
from app.pii import SESSION_KEY as KEYRING
from app.sealing import keyring_for
from app.settings import Settings


@dataclass(frozen=True)
class Engines:
    """One database: on PostgreSQL reads and writes share one pool; SQLite gets a reader of its own."""

    url: str
    write_engine: AsyncEngine
    read_engine: AsyncEngine
    write_sessions: async_sessionmaker[AsyncSession]
    read_sessions: async_sessionmaker[AsyncSession]
    is_sqlite: bool
    # PostgreSQL: asyncpg's own pool for the compiled reads (app/db/direct.py); None elsewhere,
    # and on a replica's view, whose reads go through its sessions.
    direct: DirectReads | None = None
    # PostgreSQL: the one-statement writes' own few connections (RequestContext.write_at_once),
    # None where `direct` is None or the setting db_direct_writes is 0 (they share `direct`).
    direct_writes: DirectReads | None = None

    async def dispose(self) -> None:
        if self.direct is not None:
            await self.direct.close()
        if self.direct_writes is not None:
            await self.direct_writes.close()
        await self.write_engine.dispose()
        if self.read_engine.pool is not self.write_engine.pool:
            await self.read_engine.dispose()


@dataclass(frozen=True)
class ChannelStore:
    """The database holding the stores of `channels`; `shares_hub` when it is the hub's own."""

    channels: tuple[Channel, ...]
    engines: Engines
    shares_hub: bool


@dataclass(frozen=True)
class Database(Engines):
    """The hub store, plus the channel stores (each distinct database once)."""

    stores: tuple[ChannelStore, ...] = ()
    # Closed with the engines: other connection pools on this database (the version reader's).
    on_dispose: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @cached_property
    def hub_store(self) -> ChannelStore | None:
        """The channel store on the hub's own database, if any."""
        return next((s for s in self.stores if s.shares_hub), None)

    def store_for(self, channel: Channel) -> ChannelStore:
        return next(s for s in self.stores if channel in s.channels)

    async def dispose(self) -> None:
        for close in self.on_dispose:
            await close()
        for store in self.stores:
            if not store.shares_hub:
                await store.engines.dispose()
        await super().dispose()


def sqlite_wal(url: str, *, busy_timeout_ms: int) -> None:
    """Put a SQLite file in WAL once, before its pools open: the switch needs the file to itself, so
    connections racing to make it (a reader beside a writer) could meet "database is locked"."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    deadline = time.monotonic() + busy_timeout_ms / 1000
    with closing(sqlite3.connect(database, timeout=busy_timeout_ms / 1000)) as conn:
        while str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
            try:
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as exc:  # another process has it: wait as a writer would
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def _sqlite_engine(url: str, *, begin: str, busy_timeout_ms: int) -> AsyncEngine:
    """SQLite in WAL mode; `begin` is BEGIN IMMEDIATE for writers so they queue instead of failing."""
    sqlite_wal(url, busy_timeout_ms=busy_timeout_ms)
    engine = create_async_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


def make_engine(url: str, *, settings: Settings, writer: bool = True) -> AsyncEngine:
    """One engine for `url`, with the pragmas and pool settings its backend needs."""
    if url.startswith("sqlite"):
        return _sqlite_engine(
            url,
            begin="BEGIN IMMEDIATE" if writer else "BEGIN",
            busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        )
    # A fixed pool: a request waits for a connection rather than opening (and later closing) a new
    # PostgreSQL session. Reads run in autocommit and set nothing, so returning a connection costs
    # no reset round trip (asyncpg's rollback is skipped when no transaction is open).
    connect_args: dict[str, Any] = {"prepared_statement_cache_size": settings.db_statement_cache_size}
    if settings.db_plan_cache_mode != "auto":  # in the startup packet: no statement of its own
        connect_args["server_settings"] = {"plan_cache_mode": settings.db_plan_cache_mode}
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=False,
        connect_args=connect_args,
    )


def make_engines(url: str, settings: Settings) -> dict[str, Any]:
    """The fields of `Engines` for one database URL."""
    is_sqlite = url.startswith("sqlite")
    write_engine = make_engine(url, settings=settings, writer=True)
    # PostgreSQL reads run in autocommit: no BEGIN/ROLLBACK round trips around each loader batch.
    read_engine = (
        make_engine(url, settings=settings, writer=False)
        if is_sqlite
        else write_engine.execution_options(isolation_level="AUTOCOMMIT")
    )
    # Stores translate PII at rest with the keyring their session carries (app/pii.py).
    keyring = keyring_for(settings)
    direct = direct_writes = None
    if not is_sqlite:
        mode: str = settings.db_plan_cache_mode
        modes = {"plan_cache_mode": mode} if mode != "auto" else None

        def pool(size: int) -> DirectReads:
            return DirectReads(
                url,
                max_size=size,
                timeout=settings.db_pool_timeout_seconds,
                statement_cache_size=settings.db_statement_cache_size,
                server_settings=modes,
            )

        direct = pool(settings.db_pool_size)
        if settings.db_direct_writes:
            direct_writes = pool(settings.db_direct_writes)
    return {
        "url": url,
        "write_engine": write_engine,
        "read_engine": read_engine,
        "write_sessions": async_sessionmaker(write_engine, expire_on_commit=False, info={KEYRING: keyring}),
        "read_sessions": async_sessionmaker(read_engine, expire_on_commit=False, info={KEYRING: keyring}),
        "is_sqlite": is_sqlite,
        "direct": direct,
        "direct_writes": direct_writes,
    }


def make_database(settings: Settings) -> Database:
    """Build the hub and the channel stores from settings; stores on the hub's URL share its engines."""
    hub_fields = make_engines(settings.database_url, settings)
    hub = Engines(**hub_fields)
    by_url: dict[str, list[Channel]] = {}
    for channel in Channel:
        by_url.setdefault(settings.channel_database_url(channel), []).append(channel)
    stores = tuple(
        ChannelStore(
            channels=tuple(channels),
            engines=hub if url == settings.database_url else Engines(**make_engines(url, settings)),
            shares_hub=url == settings.database_url,
        )
        for url, channels in by_url.items()
    )
    return Database(**hub_fields, stores=stores)
