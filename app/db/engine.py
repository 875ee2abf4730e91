"""Engines and sessionmakers: a write path that serializes on SQLite, a read path that never blocks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from app.settings import Settings


@dataclass(frozen=True)
class Database:
    """The hub store's engines; on PostgreSQL reads and writes share one pool."""

    write_engine: AsyncEngine
    read_engine: AsyncEngine
    write_sessions: async_sessionmaker[AsyncSession]
    read_sessions: async_sessionmaker[AsyncSession]
    is_sqlite: bool

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()


def _sqlite_engine(url: str, *, begin: str, busy_timeout_ms: int) -> AsyncEngine:
    """SQLite in WAL mode; `begin` is BEGIN IMMEDIATE for writers so they queue instead of failing."""
    engine = create_async_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
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
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=False)


def make_database(settings: Settings) -> Database:
    """Build the hub store from settings."""
    write_engine = make_engine(settings.database_url, settings=settings, writer=True)
    read_engine = (
        make_engine(settings.database_url, settings=settings, writer=False)
        if settings.is_sqlite
        else write_engine
    )
    return Database(
        write_engine=write_engine,
        read_engine=read_engine,
        write_sessions=async_sessionmaker(write_engine, expire_on_commit=False),
        read_sessions=async_sessionmaker(read_engine, expire_on_commit=False),
        is_sqlite=settings.is_sqlite,
    )
