"""Statements and in-process CPU per write: setConsent and linkIdentity, on a fresh PostgreSQL database.

The app runs in this process and requests go straight to its ASGI callable (bench/cold_cpu.py), so
the CPU counted is the server's own work per write (HTTP app, GraphQL, services, database client),
not the database's. Statements are counted as tests/sql.py counts them (BEGIN, SAVEPOINT and
RELEASE left out), and as round trips (those too, and the COMMIT; asyncpg sends BEGIN unseen). Rerun:
`python -m bench.writes --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg
import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url

from app.auth.keys import create_key
from app.auth.principal import PrincipalKind, Role
from app.cli import migrate
from app.domain import Channel
from app.main import create_app
from bench.cold_cpu import call
from bench.generate import bench_settings

SET_CONSENT = "mutation ($input: ConsentInput!) { setConsent(input: $input) { id } }"
LINK = "mutation ($identity: IdentityInput!) { linkIdentity(identity: $identity) { user { id } } }"
IGNORED = ("BEGIN", "PRAGMA", "SAVEPOINT", "RELEASE")


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def counting(app: Any) -> Iterator[list[str]]:
    """Every statement the app's hub engine sends inside the block, BEGIN and COMMIT included, and
    those on its own asyncpg connections (app/db/direct.py: one-statement writes, in autocommit)."""
    seen: list[str] = []
    engine = app.state.db.write_engine.sync_engine

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    def commit(_conn: Any) -> None:
        seen.append("COMMIT")

    def logged(query: Any) -> None:
        seen.append(query.query)

    direct = app.state.db.direct
    taken = direct.connection

    @asynccontextmanager
    async def connection() -> AsyncIterator[Any]:
        async with taken() as conn:
            conn.add_query_logger(logged)
            try:
                yield conn
            finally:
                await asyncio.sleep(0)  # asyncpg calls its loggers soon after, not at once
                conn.remove_query_logger(logged)

    event.listen(engine, "before_cursor_execute", record)
    event.listen(engine, "commit", commit)
    direct.connection = connection
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
        event.remove(engine, "commit", commit)
        del direct.connection


async def ask(app: Any, key: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = orjson.loads(
        await call(app, orjson.dumps({"query": query, "variables": variables}), key)
    )
    if answer.get("errors"):
        raise SystemExit(f"the bench's write failed: {answer['errors']}")
    return answer


@asynccontextmanager
async def fresh_app(database_url: str, prefix: str) -> AsyncIterator[tuple[Any, str]]:
    """The app on a database of its own, migrated, made and dropped around the block (and its URL)."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    await _admin(database_url, f'CREATE DATABASE "{name}"')
    try:
        settings = bench_settings(url).model_copy(update={"response_cache_bytes": 0})
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(1) as pool:
            pool.submit(migrate, settings).result()
        app = create_app(settings)
        try:
            yield app, url
        finally:
            await app.state.db.dispose()
    finally:
        await _admin(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run(database_url: str, writes: int, rounds: int) -> None:
    async with fresh_app(database_url, "troika_bench_writes") as (app, _url):
        await measure(app, writes, rounds)


async def measure(app: Any, writes: int, rounds: int) -> None:
    async with app.state.db.write_sessions() as session, session.begin():
        operator = (
            await create_key(session, kind=PrincipalKind.OPERATOR, roles=frozenset({Role.OPERATOR}))
        ).raw
        service = (await create_key(session, kind=PrincipalKind.SERVICE, channel=Channel.APP)).raw
    users = []
    for n in range(20):
        found = await ask(app, operator, LINK, {"identity": {"kind": "APP_USER_ID", "value": f"W-{n}"}})
        users.append(found["data"]["linkIdentity"]["user"]["id"])
    serial = iter(range(10**9))

    def consent(n: int) -> tuple[str, dict[str, Any]]:
        user = users[n % len(users)]
        change = {"purpose": "PUSH", "channel": "APP", "sourceChannel": "APP", "granted": n % 2 == 0}
        return SET_CONSENT, {"input": {**change, "userId": user}}

    def link(n: int) -> tuple[str, dict[str, Any]]:
        return LINK, {"identity": {"kind": "APP_USER_ID", "value": f"L-{next(serial)}"}}

    for label, make, key in (("setConsent", consent, service), ("linkIdentity", link, operator)):
        for n in range(20):  # warm-up: plans, pools, the key
            await ask(app, key, *make(n))
        with counting(app) as seen:
            await ask(app, key, *make(0))
        cpu: list[float] = []
        for _ in range(rounds):
            started = time.process_time()
            for n in range(writes):
                await ask(app, key, *make(n))
            cpu.append((time.process_time() - started) * 1000 / writes)
        counted = [s for s in seen if not s.lstrip().upper().startswith((*IGNORED, "COMMIT"))]
        print(
            f"{label}: {len(counted)} statements as tests/sql.py counts them, {len(seen)} round trips seen"
            " (SAVEPOINT, RELEASE, COMMIT too; asyncpg's BEGIN is not seen); server CPU per write: "
            f"median {statistics.median(cpu):.2f} ms (rounds {', '.join(f'{c:.2f}' for c in cpu)})"
        )
        for statement in seen:
            print("   ", " ".join(statement.split())[:100])
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--database-url", required=True, help="a PostgreSQL server; the bench makes its own database"
    )
    parser.add_argument("--writes", type=int, default=200, help="writes per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.database_url, args.writes, args.rounds))


if __name__ == "__main__":
    main()
