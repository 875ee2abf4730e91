"""CPU per ingested record in one process: fixed batches through httpx.ASGITransport to `POST /ingest/APP`.

The dataset is copied first (PostgreSQL `CREATE DATABASE … TEMPLATE`, or the SQLite file), so every
run starts from the same rows and sends the same batches (a seed, a fixed clock): runs of two
commits are comparable. Bodies are encoded before the clock starts. It reports this process's CPU
per record (the server's work plus a thin in-process client) and the CPU of the PostgreSQL
backends serving this process's connections (from /proc, Linux only; the cluster's background
writers are not counted). `--profile` runs the same batches under cProfile and prints own time by
library and the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import pstats
import random
import shutil
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.keys import create_key
from app.auth.principal import PrincipalKind
from app.db.engine import make_database
from app.db.models import Identity
from app.domain import Channel
from app.main import create_app
from app.pii import PHONE, keyring_of
from app.settings import Settings
from bench import harness
from bench.generate import bench_settings
from bench.ingest import envelope
from bench.profile_query import summarize

NOW = "2026-11-25T12:00:00+00:00"


@asynccontextmanager
async def fresh_copy(database_url: str) -> AsyncIterator[str]:
    """A throwaway copy of the dataset, dropped afterwards."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        source = Path(url.database or "")
        copy = source.with_name(f"{source.stem}-run-{uuid.uuid4().hex[:6]}.db")
        shutil.copy(source, copy)
        try:
            yield url.set(database=str(copy)).render_as_string(hide_password=False)
        finally:
            copy.unlink(missing_ok=True)
        return
    name = f"{url.database}_run_{uuid.uuid4().hex[:6]}"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{url.database}"')
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def prepare(settings: Settings, pool: int) -> tuple[str, list[str], list[str]]:
    """A service key and the identity pools: half existing identities (the first by value), half new;
    APP_USER_IDs, and phones for `--phones`."""
    db = make_database(settings)
    try:
        async with db.write_sessions() as session, session.begin():
            new = await create_key(session, kind=PrincipalKind.SERVICE, channel=Channel.APP, name="perf")
        async with db.read_sessions() as session:
            stmt = (
                select(Identity.value)
                .where(Identity.kind == "APP_USER_ID")
                .order_by(Identity.value)
                .limit(pool // 2)
            )
            existing = list((await session.execute(stmt)).scalars())
            phones = await existing_phones(session, pool // 2)
    finally:
        await db.dispose()
    users = existing + [f"perf-u{n:06d}" for n in range(pool - len(existing))]
    return new.raw, users, phones + [f"+86139{n:08d}" for n in range(pool - len(phones))]


async def existing_phones(session: AsyncSession, limit: int) -> list[str]:
    """Phones of the dataset, as E.164 (opened with the bench's keys)."""
    stmt = select(Identity.sealed).where(Identity.kind == "PHONE").order_by(Identity.value).limit(limit)
    keyring = keyring_of(session)
    return [keyring.unseal(s, purpose=PHONE) for s in (await session.execute(stmt)).scalars() if s]


def bodies(
    pool: list[str], phones: list[str], share: float, batches: int, size: int, seed: int
) -> list[bytes]:
    """The same batches for every run: the bench's 40/20/40 mix, encoded once; a `share` of the
    records names its person by phone instead of APP user id."""
    rng = random.Random(seed)
    out = []
    for b in range(batches):
        records = []
        for j in range(size):
            record = envelope(rng, f"p{seed}-{b}-{j}", rng.choice(pool), NOW)[1]
            if share and rng.random() < share:
                record["identity"] = {"kind": "PHONE", "value": rng.choice(phones)}
            records.append(record)
        out.append(json.dumps(records).encode())
    return out


async def backend_pids(settings: Settings) -> list[int]:
    async with make_database(settings).read_sessions() as session:
        stmt = text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [int(p) for p in (await session.execute(stmt)).scalars()]


def backend_cpu(conn: Any) -> float:
    """CPU seconds of the PostgreSQL backend serving `conn` (/proc/PID/schedstat, nanoseconds)."""
    pid = conn.connection.dbapi_connection.driver_connection.get_server_pid()
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


@contextmanager
def timing_statements(app: Any) -> Iterator[dict[str, list[tuple[float, float]]]]:
    """Wall time and backend CPU of each statement, by its first words."""
    times: dict[str, list[tuple[float, float]]] = defaultdict(list)
    started: dict[int, tuple[float, float]] = {}

    def before(conn: Any, cursor: Any, *_args: Any) -> None:
        started[id(cursor)] = (time.perf_counter(), backend_cpu(conn))

    def after(conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        label = " ".join(statement.split()[:4])[:48]
        wall, cpu = started.pop(id(cursor), (time.perf_counter(), backend_cpu(conn)))
        times[label].append((time.perf_counter() - wall, backend_cpu(conn) - cpu))

    engines = harness.all_engines(app.state.db)
    for engine in engines:
        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
    try:
        yield times
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", before)
            event.remove(engine, "after_cursor_execute", after)


@contextmanager
def timing_gc() -> Iterator[dict[int, list[float]]]:
    """CPU time the cyclic garbage collector takes, by generation."""
    spent: dict[int, list[float]] = defaultdict(list)
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.process_time()
        else:
            spent[info["generation"]].append(time.process_time() - started[0])

    gc.callbacks.append(callback)
    try:
        yield spent
    finally:
        gc.callbacks.remove(callback)


async def run(args: argparse.Namespace) -> None:
    """Copy the dataset, warm up, then send the batches (under cProfile if asked) and report."""
    async with fresh_copy(args.database_url) as url:
        settings = bench_settings(url)
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        key, pool, phones = await prepare(settings, args.pool)
        warm, *timed = bodies(pool, phones, args.phones, args.batches + 1, args.batch, args.seed)
        app = create_app(settings)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        transport = httpx.ASGITransport(app=app)
        try:
            async with (
                app.router.lifespan_context(app),  # what uvicorn runs at startup
                httpx.AsyncClient(transport=transport, base_url="http://bench.local") as client,
                AsyncExitStack() as stack,
            ):
                await client.post("/ingest/APP", content=warm, headers=headers)
                pids = [] if settings.is_sqlite else await backend_pids(settings)
                statements = stack.enter_context(timing_statements(app)) if args.statements else {}
                collections = stack.enter_context(timing_gc())
                pg_before = harness.cpu_seconds(pids)
                prof = cProfile.Profile(time.process_time) if args.profile else None
                accepted, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
                if prof:
                    prof.enable()
                for body in timed:
                    response = await client.post("/ingest/APP", content=body, headers=headers)
                    response.raise_for_status()
                    accepted += response.json()["accepted"]
                if prof:
                    prof.disable()
                cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
                pg_after = harness.cpu_seconds(pids)
        finally:
            await app.state.db.dispose()
    sent = args.batches * args.batch
    pg = sum(pg_after.values()) - sum(pg_before.values())
    print(f"{args.batches} batches x {args.batch} records, accepted {accepted} of {sent}; wall {wall:.2f}s")
    print(
        f"CPU ms/record: this process {1000 * cpu / sent:.4f}, "
        f"PostgreSQL backends {1000 * pg / sent:.4f}{' (profiled)' if prof else ''}"
    )
    for generation, pauses in sorted(collections.items()):
        print(f"  gc generation {generation}: {len(pauses)} collections, {1000 * sum(pauses):.0f} ms CPU")
    if statements:
        print("  per batch: wall ms, PostgreSQL backend CPU ms, statements, kind")
    for label, spent in sorted(statements.items(), key=lambda kv: -sum(w for w, _ in kv[1])):
        ms_wall, ms_cpu = (1000 * sum(x[i] for x in spent) / args.batches for i in (0, 1))
        print(f"  {ms_wall:7.2f} {ms_cpu:7.2f}  x{len(spent) / args.batches:.1f}  {label}")
    if prof:
        summarize(pstats.Stats(prof), sent, args.top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True, help="the dataset (copied, never written)")
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--pool", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--phones", type=float, default=0.0, help="share of records identified by phone")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--statements", action="store_true", help="wall time per statement kind")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    if not (1 <= args.batches <= 1000 and 1 <= args.batch <= 5000 and 2 <= args.pool <= 1_000_000):
        parser.error("--batches 1..1000, --batch 1..5000, --pool 2..1000000")
    if not 0 <= args.phones <= 1:
        parser.error("--phones is a share: 0..1")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
