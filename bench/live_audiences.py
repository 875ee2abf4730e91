"""Live audience membership: how soon an entry reaches an `audienceChanged` subscriber, and what
following the outbox with saved audiences costs ingestion.

    python -m bench.live_audiences --admin-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

Makes a database of its own (dropped afterwards), serves it with one uvicorn process (its
membership follower leads), and:

1. latency: `--changes` times, one APP order paid by a new customer (POST /ingest/APP), and the
   time from sending it to the subscriber receiving the ENTERED event (the commit is in between);
2. throughput: `--batches` batches of `--batch` APP records (orders and events of `--people`
   customers, 4 clients at once), with no saved audience and then with `--audiences` of them, in
   records a second, and how long the follower took to catch up after the last batch answered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from alembic import command
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from websockets.asyncio.client import connect

from app.auth.keys import create_key
from app.auth.principal import PrincipalKind, Role
from app.cli import alembic_config
from app.db.audience_models import AudienceFollower
from app.db.engine import make_database
from app.db.models import Change
from app.domain import Channel
from bench import harness
from bench.generate import bench_settings

WATCHED = {"orders": {"channel": "APP", "statuses": ["PAID"]}}
OTHERS: list[dict[str, Any]] = [
    {"orders": {"channel": "APP", "minCount": 3}},
    {"orders": {"channel": "APP", "withinDays": 30}},
    {"orders": {"channel": "MINI_PROGRAM"}},
    {"behavior": {"types": ["product_view"]}},
    {"behavior": {"types": ["product_view"], "minCount": 5}},
    {"identity": {"kind": "APP_USER_ID"}},
    {"identity": {"kind": "PHONE"}},
    {"consent": {"purpose": "MARKETING"}},
    {"membership": {"tiers": ["GOLD"]}},
    {"cart": {}},
    {"reservations": {}},
    {"not": {"orders": {"channel": "APP"}}},
    {"all": [{"orders": {"channel": "APP"}}, {"behavior": {"types": ["product_view"]}}]},
    {"any": [{"orders": {"channel": "MINI_PROGRAM"}}, {"cart": {}}]},
    {"all": [{"orders": {"channel": "APP"}}, {"not": {"consent": {"purpose": "MARKETING"}}}]},
    {"orders": {"channel": "APP", "sku": "A1"}},
    {"orders": {"channel": "APP", "minCount": 2, "withinDays": 7}},
    {"behavior": {"types": ["favorite"]}},
    {"interest": {"tag": "kids"}},
]
SAVE = "mutation ($n: String!, $c: AudienceCondition!) { saveAudience(name: $n, condition: $c) { size } }"
DELETE = "mutation ($n: String!) { deleteAudience(name: $n) }"
SUBSCRIBE = 'subscription { audienceChanged(name: "watched") { userId entered } }'


def order(n: int, account: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    data = {
        "order_no": f"LA-{n}",
        "status": 1,
        "total_fen": 100,
        "items": [{"sku": "A1", "quantity": 1, "price_fen": 100}],
    }
    return {
        "id": f"o-{n}",
        "type": "order",
        "identity": {"kind": "APP_USER_ID", "value": account},
        "occurredAt": now,
        "data": data,
    }


def view(n: int, account: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "id": f"e-{n}",
        "type": "event",
        "identity": {"kind": "APP_USER_ID", "value": account},
        "occurredAt": now,
        "data": {"event": "product_view", "properties": {"sku": "A1"}},
    }


async def keys(url: str) -> tuple[str, str]:
    db = make_database(bench_settings(url))
    try:
        async with db.write_sessions() as session, session.begin():
            op = await create_key(session, kind=PrincipalKind.OPERATOR, roles=frozenset({Role.ADMIN}))
            svc = await create_key(session, kind=PrincipalKind.SERVICE, channel=Channel.APP)
    finally:
        await db.dispose()
    return op.raw, svc.raw


async def gql(client: httpx.AsyncClient, key: str, query: str, variables: dict[str, Any]) -> Any:
    answer = (
        await client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {key}"},
        )
    ).json()
    assert not answer.get("errors"), answer
    return answer["data"]


async def ingest(client: httpx.AsyncClient, svc: str, records: list[dict[str, Any]]) -> None:
    response = await client.post("/ingest/APP", json=records, headers={"Authorization": f"Bearer {svc}"})
    assert response.status_code == 200, response.text
    report = response.json()
    assert not report.get("rejected"), report


async def latency(base: str, op: str, svc: str, changes: int) -> tuple[list[float], list[float]]:
    """Milliseconds from sending a paid order of a new customer, and from its answer (the commit is
    before it), to their ENTERED event."""
    out, after_answer = [], []
    async with (
        httpx.AsyncClient(base_url=f"http://{base}", timeout=30) as client,
        connect(
            f"ws://{base}/graphql",
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        ) as ws,
    ):
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {op}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
        # Warm-up changes until one arrives: the subscription is listening from then on.
        for n in range(1, 60):
            await ingest(client, svc, [order(-n, f"LA-warm-{n}")])
            try:
                await asyncio.wait_for(ws.recv(), 2)
                break
            except TimeoutError:
                continue
        while True:  # the other warm-up entries, if any arrived late
            try:
                await asyncio.wait_for(ws.recv(), 2)
            except TimeoutError:
                break
        for n in range(changes):
            sent = time.perf_counter()
            await ingest(client, svc, [order(n, f"LA-new-{n}")])
            answered = time.perf_counter()
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert message["payload"]["data"]["audienceChanged"]["entered"] is True, message
            out.append((time.perf_counter() - sent) * 1000)
            after_answer.append((time.perf_counter() - answered) * 1000)
    return out, after_answer


async def lag(url: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            newest = (await conn.execute(select(func.max(Change.id)))).scalar_one() or 0
            cursor = (await conn.execute(select(AudienceFollower.cursor))).scalar_one()
    finally:
        await engine.dispose()
    return int(newest) - int(cursor)


async def throughput(
    base: str, url: str, svc: str, args: argparse.Namespace, tag: str
) -> tuple[float, float]:
    """Records a second over `args.batches` batches, and seconds until the follower caught up."""
    rng = random.Random(7)
    people = [f"LA-p{i}" for i in range(args.people)]
    batches = [
        [
            (order if rng.random() < 0.3 else view)(hash((tag, b, i)) & 0xFFFFFFF, rng.choice(people))
            for i in range(args.batch)
        ]
        for b in range(args.batches)
    ]
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)

    async def client_loop() -> None:
        async with httpx.AsyncClient(base_url=f"http://{base}", timeout=60) as client:
            while not queue.empty():
                await ingest(client, svc, queue.get_nowait())

    start = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(4)))
    took = time.perf_counter() - start
    done = time.perf_counter()
    while await lag(url) > 0:  # noqa: ASYNC110  (a bench polls: nothing to wait on from outside)
        await asyncio.sleep(0.05)
    return args.batches * args.batch / took, time.perf_counter() - done


async def run(args: argparse.Namespace, url: str, base: str) -> None:
    op, svc = await keys(url)
    settings = bench_settings(url)
    proc = harness.start_server(settings, args.port, 1, settings.var_dir / f"live-{args.port}.log")
    try:
        await harness.wait_healthy(proc, f"http://{base}")
        async with httpx.AsyncClient(base_url=f"http://{base}", timeout=60) as client:
            await throughput(base, url, svc, args, "warm-up")  # not counted: first requests, cold caches
            rate0, drain0 = await throughput(base, url, svc, args, "none")
            await gql(client, op, SAVE, {"n": "watched", "c": WATCHED})
            for i, condition in enumerate(OTHERS[: args.audiences - 1]):
                await gql(client, op, SAVE, {"n": f"other-{i}", "c": condition})
            rate20, drain20 = await throughput(base, url, svc, args, "saved")
        sent, answered = await latency(base, op, svc, args.changes)
        times, after = sorted(sent), sorted(answered)
    finally:
        harness.stop_server(proc)
    pct = harness.percentile
    print(f"load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"entry reached the subscriber, ms after the order was sent ({len(times)} changes, "
        f"{args.audiences} saved audiences): p50 {pct(times, 50):.0f}  p99 {pct(times, 99):.0f}  "
        f"max {times[-1]:.0f}"
    )
    print(
        f"  after the ingestion's answer (its commit is before): p50 {pct(after, 50):.0f}  "
        f"p99 {pct(after, 99):.0f}  max {after[-1]:.0f}"
    )
    print(f"ingestion, no saved audience: {rate0:.0f} records/s (follower caught up {drain0:.2f} s after)")
    print(
        f"ingestion, {args.audiences} saved audiences: {rate20:.0f} records/s "
        f"(follower caught up {drain20:.2f} s after)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--admin-url", required=True, help="a PostgreSQL database to create the bench's in")
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--audiences", type=int, default=20)
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--port", type=int, default=8791)
    args = parser.parse_args()
    name = f"troika_bench_live_{uuid.uuid4().hex[:8]}"

    async def ddl(sql: str) -> None:
        admin = create_async_engine(args.admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        async with admin.connect() as conn:
            await conn.execute(text(sql))
        await admin.dispose()

    asyncio.run(ddl(f'CREATE DATABASE "{name}"'))
    url = args.admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        command.upgrade(alembic_config(url), "heads")
        asyncio.run(run(args, url, f"{harness.HOST}:{args.port}"))
    finally:
        asyncio.run(ddl(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
