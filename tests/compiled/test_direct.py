"""The compiled reads' own connections on PostgreSQL (app/db/direct.py): never more than the
pool's size, a failed statement's connection is closed rather than reused, and a request that
waits too long for one fails (the resolvers then answer it)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from app.db.direct import DirectReads
from tests.conftest import by_nature

PID = "SELECT pg_backend_pid()"


def _reads(database_url: str, *, size: int, timeout: float = 30.0) -> DirectReads:
    if not database_url.startswith("postgresql"):
        by_nature("SQLite reads run on the request's session")
    return DirectReads(database_url, max_size=size, timeout=timeout, statement_cache_size=10)


async def test_concurrent_reads_share_at_most_the_pool_size(database_url: str) -> None:
    reads = _reads(database_url, size=2)
    try:

        async def one() -> int:
            async with reads.connection() as conn:
                await conn.execute("SELECT pg_sleep(0.02)")
                return int(await conn.fetchval(PID))

        pids = await asyncio.gather(*(one() for _ in range(8)))
        assert len(pids) == 8
        assert len(set(pids)) <= 2
        async with reads.connection() as conn:  # given back: used again
            assert await conn.fetchval(PID) in pids
    finally:
        await reads.close()


async def test_a_failed_statement_closes_its_connection(database_url: str) -> None:
    reads = _reads(database_url, size=1)
    try:
        async with reads.connection() as conn:
            first = await conn.fetchval(PID)
        with pytest.raises(asyncpg.PostgresError):
            async with reads.connection() as conn:
                await conn.fetchval("SELECT 1 / 0")
        async with reads.connection() as conn:
            assert await conn.fetchval(PID) != first
    finally:
        await reads.close()


async def test_waiting_past_the_timeout_fails_and_frees_nothing_it_did_not_take(database_url: str) -> None:
    reads = _reads(database_url, size=1, timeout=0.05)
    try:
        async with reads.connection() as held:
            with pytest.raises(TimeoutError):
                async with reads.connection():
                    pass
            pid = await held.fetchval(PID)
        async with reads.connection() as conn:
            assert await conn.fetchval(PID) == pid
    finally:
        await reads.close()
