"""Sustained ingestion through `POST /ingest/APP`: K senders posting batches of envelopes for T seconds.

The mix is 40% orders, 20% cart changes and 40% events, under APP_USER_ID identities drawn from a
pool that is half existing users (from the dataset) and half new values, so the run both links
new users and writes for known ones. At the end it checks that every accepted record is a row of
`ch_records`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import orjson
from sqlalchemy import func, select

from app.auth.keys import create_key
from app.auth.principal import PrincipalKind
from app.db.channel_models import ChannelOrder, RawRecord
from app.db.engine import make_database
from app.db.models import Identity
from app.domain import Channel
from app.settings import Settings
from bench import harness
from bench.generate import bench_settings

SKUS = tuple(f"A{n}" for n in range(1, 200))
EVENTS = ("click", "page_view", "article_read")


@dataclass
class Tally:
    """What the server reported for the batches of one run."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    sent: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


async def prepare(settings: Settings, pool: int, tag: str) -> tuple[str, list[str]]:
    """Mint an APP service key; the identity pool: half existing APP_USER_IDs, half new values."""
    db = make_database(settings)
    try:
        async with db.write_sessions() as session, session.begin():
            new = await create_key(
                session, kind=PrincipalKind.SERVICE, channel=Channel.APP, name="bench ingest"
            )
        async with db.read_sessions() as session:
            stmt = (
                select(Identity.value)
                .where(Identity.kind == "APP_USER_ID")
                .order_by(func.random())
                .limit(pool // 2)
            )
            existing = list((await session.execute(stmt)).scalars())
    finally:
        await db.dispose()
    fresh = [f"bench-{tag}-u{n:06d}" for n in range(pool - len(existing))]
    return new.raw, existing + fresh


def envelope(rng: random.Random, source_id: str, value: str, now: str) -> tuple[str, dict[str, object]]:
    """One APP envelope of the mix; returns its type and the envelope."""
    r = rng.random()
    data: dict[str, object]
    if r < 0.4:
        kind = "order"
        quantity = rng.randint(1, 3)
        data = {
            "order_no": source_id,
            "status": rng.randint(0, 4),
            "total_fen": 5000 * quantity,
            "items": [{"sku": rng.choice(SKUS), "quantity": quantity, "price_fen": 5000}],
        }
    elif r < 0.6:
        kind = "cart"
        data = {"sku": rng.choice(SKUS), "quantity": rng.randint(0, 5)}
    else:
        kind = "event"
        data = {"event": rng.choice(EVENTS), "properties": {"tags": [rng.choice(("tea", "spa", "tech"))]}}
    identity = {"kind": "APP_USER_ID", "value": value}
    return kind, {"id": source_id, "type": kind, "identity": identity, "occurredAt": now, "data": data}


def make_step(tag: str, pool: list[str], batch: int, tally: Tally, partitions: int = 1) -> harness.Step:
    """One sender request: a fresh batch of `batch` envelopes, checked against the server's report.

    With `partitions` > 1, sender k draws only from pool[k::partitions], so concurrent batches
    never share an identity (to tell lock conflicts between senders from raw throughput).
    """
    slices = [pool[k::partitions] for k in range(partitions)]

    async def step(client: httpx.AsyncClient, sender: int, i: int) -> str:
        rng = random.Random(f"{tag}-{sender}-{i}")
        now = datetime.now(UTC).isoformat()
        kinds: dict[str, int] = {}
        records = []
        for j in range(batch):
            value = rng.choice(slices[sender % partitions])
            kind, env = envelope(rng, f"{tag}-{sender}-{i}-{j}", value, now)
            kinds[kind] = kinds.get(kind, 0) + 1
            records.append(env)
        tally.sent += batch
        # orjson both ways: the load generator shares the machine with the server it measures.
        body_bytes = orjson.dumps(records)
        resp = await client.post(
            "/ingest/APP", content=body_bytes, headers={"Content-Type": "application/json"}
        )
        if resp.status_code != 200:
            return f"HTTP {resp.status_code}: {resp.text[:200]}"
        body = orjson.loads(resp.content)
        tally.accepted += body["accepted"]
        tally.duplicates += body["duplicates"]
        tally.rejected += body["rejected"]
        if body["accepted"] == batch:
            for kind, n in kinds.items():
                tally.by_type[kind] = tally.by_type.get(kind, 0) + n
            return ""
        bad = [r for r in body["results"] if r["status"] != "ACCEPTED"][:2]
        return f"accepted {body['accepted']} of {batch}: {bad}"

    return step


async def verify(settings: Settings, tag: str) -> tuple[dict[str, int], int, int]:
    """Rows this run left: ch_records by type, ch_orders, and identities of new users."""
    db = make_database(settings)
    try:
        async with db.store_for(Channel.APP).engines.read_sessions() as session:
            mine = RawRecord.source_id.like(f"{tag}-%")
            stmt = select(RawRecord.type, func.count()).where(mine).group_by(RawRecord.type)
            records = {str(t): int(n) for t, n in (await session.execute(stmt)).all()}
            orders = (
                await session.execute(select(func.count()).where(ChannelOrder.order_id.like(f"{tag}-%")))
            ).scalar_one()
        async with db.read_sessions() as session:
            new_users = (
                await session.execute(select(func.count()).where(Identity.value.like(f"bench-{tag}-%")))
            ).scalar_one()
    finally:
        await db.dispose()
    return records, int(orders), int(new_users)


def main() -> None:
    """Parse arguments, start the server, send batches for the run, report and verify."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2000, help="envelopes per request (1..5000)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--pool", type=int, default=50_000, help="distinct APP_USER_ID values")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument(
        "--reuseport",
        action="store_true",
        help="serve with `troika serve` (a SO_REUSEPORT socket per worker) instead of uvicorn's workers",
    )
    parser.add_argument(
        "--disjoint",
        action="store_true",
        help="give each sender its own part of the pool (no shared identities)",
    )
    args = parser.parse_args()
    if not (1 <= args.senders <= 64 and 1 <= args.batch <= 5000 and 0 < args.seconds <= 600):
        parser.error("--senders 1..64, --batch 1..5000, --seconds 0..600")
    if not (1 <= args.workers <= 16 and 2 <= args.pool <= 1_000_000):
        parser.error("--workers 1..16, --pool 2..1000000")
    settings = bench_settings(args.database_url)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    tag = secrets.token_hex(4)
    key, pool = asyncio.run(prepare(settings, args.pool, tag))
    new_values = sum(v.startswith(f"bench-{tag}-") for v in pool)
    print(f"run tag {tag}; identity pool {len(pool)} ({new_values} values no user holds yet)")
    log_path = settings.var_dir / f"server-{args.port}.log"
    base = f"http://{harness.HOST}:{args.port}"
    headers = {"Authorization": f"Bearer {key}"}
    tally = Tally()
    step = make_step(tag, pool, args.batch, tally, args.senders if args.disjoint else 1)
    proc = harness.start_server(settings, args.port, args.workers, log_path, reuseport=args.reuseport)
    pg = not settings.is_sqlite
    try:
        asyncio.run(harness.wait_healthy(proc, base))
        run, cpu = harness.measure_cpu(
            proc.pid,
            lambda: asyncio.run(harness.load(base, headers, step, args.senders, args.seconds)),
            postgres=pg,
        )
    finally:
        harness.stop_server(proc)
    if not run.latencies:
        raise SystemExit("no batch completed")
    shared = "disjoint identities per sender" if args.disjoint else "one shared identity pool"
    server = "troika serve (a socket per worker)" if args.reuseport else "uvicorn"
    print(f"server: {server}, {args.workers} worker(s), log {log_path}")
    print(f"{args.senders} senders x {args.batch} envelopes, {shared}")
    counts = f"accepted {tally.accepted}, duplicates {tally.duplicates}, rejected {tally.rejected}"
    print(f"records sent {tally.sent}, {counts}")
    print(f"accepted by type (fully accepted batches): {tally.by_type}")
    harness.report(run, cpu, unit="record", per=max(tally.accepted, 1), pg=pg)
    records, orders, new_users = asyncio.run(verify(settings, tag))
    stored = sum(records.values())
    verdict = "OK" if stored == tally.accepted else "MISMATCH"
    print(f"verify: ch_records {stored} (by type {records}) vs accepted {tally.accepted}: {verdict}")
    print(f"verify: ch_orders of this run {orders} (orders accepted {tally.by_type.get('order', 0)})")
    print(f"new users linked: {new_users} APP_USER_ID identities of the {len(pool)} pool")


if __name__ == "__main__":
    main()
