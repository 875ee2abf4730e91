"""Load the GraphQL read path over real HTTP (N clients, uvicorn without access log) and count its SQL."""

from __future__ import annotations

import argparse
import asyncio
import os
import random

import httpx
from sqlalchemy import func, select

from app.auth.keys import create_key
from app.auth.principal import PrincipalKind, Role
from app.db.engine import make_database
from app.db.models import User
from app.main import create_app
from app.settings import Settings
from bench import harness, wrk
from bench.generate import bench_settings

QUERIES = {
    # The unified-user query: identities, the 20 newest orders with items, cart, consents.
    "unified": (
        "query ($id: ID!) { user(id: $id) { id phone identities { kind namespace value } "
        "orders(first: 20) { totalCount nodes { id channel sourceId status totalCents placedAt "
        "items { sku quantity unitPriceCents } } } cart { items { sku quantity channel } } "
        "consents { purpose channel granted } } }"
    ),
    # The earlier identity-only query (bench.read_path's).
    "identity": (
        "query ($id: ID!) { user(id: $id) { id phone createdAt "
        "identities { kind namespace value channel linkedAt linkedBy } } }"
    ),
}


async def prepare(
    settings: Settings, sample: int = 1000, roles: frozenset[Role] = frozenset({Role.VIEWER, Role.PII_READER})
) -> tuple[str, list[int]]:
    """Mint an operator key (by default viewer + pii_reader) and pick random active user ids."""
    db = make_database(settings)
    try:
        async with db.write_sessions() as session, session.begin():
            new = await create_key(
                session,
                kind=PrincipalKind.OPERATOR,
                roles=roles,
                name="bench query",
            )
        async with db.read_sessions() as session:
            stmt = select(User.id).where(User.merged_into_id.is_(None)).order_by(func.random()).limit(sample)
            ids = list((await session.execute(stmt)).scalars())
    finally:
        await db.dispose()
    if not ids:
        raise SystemExit("no active users: run bench.generate first")
    return new.raw, ids


def problem_of(resp: httpx.Response) -> str:
    """What is wrong with a GraphQL answer ("" when it is HTTP 200, without errors, with a user)."""
    if resp.status_code != 200:
        return f"HTTP {resp.status_code}: {resp.text[:200]}"
    payload = resp.json()
    if payload.get("errors"):
        return str(payload["errors"])
    return "" if (payload.get("data") or {}).get("user") else "user is null"


async def count_statements(settings: Settings, key: str, query: str, user_id: int) -> tuple[list[str], str]:
    """Send the query in-process (after one warm-up) and return its SQL statements and the answer.

    The response cache is off here: these are the statements of a miss (a hit runs one).
    """
    app = create_app(settings.model_copy(update={"response_cache_bytes": 0}))
    db = app.state.db
    body = {"query": query, "variables": {"id": str(user_id)}}
    headers = {"Authorization": f"Bearer {key}"}
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench.local") as client:
            (await client.post("/graphql", json=body, headers=headers)).raise_for_status()  # warm-up
            with harness.counting_statements(db) as seen:
                resp = await client.post("/graphql", json=body, headers=headers)
            if problem := problem_of(resp):
                raise SystemExit(f"the query failed in-process: {problem[:500]}")
            return list(seen), resp.text
    finally:
        await db.dispose()


def make_step(query: str, ids: list[int]) -> harness.Step:
    """One client request: the query for a random one of `ids`, checked."""
    rngs: dict[int, random.Random] = {}

    async def step(client: httpx.AsyncClient, loop: int, _i: int) -> str:
        rng = rngs.setdefault(loop, random.Random(loop))
        body = {"query": query, "variables": {"id": str(rng.choice(ids))}}
        return problem_of(await client.post("/graphql", json=body))

    return step


def main() -> None:
    """Parse arguments, count statements, start the server, load it, report, and always stop it."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--query", choices=sorted(QUERIES), default="unified")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of untimed load first")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--access-log", action="store_true", help="keep uvicorn's access log on")
    parser.add_argument(
        "--driver",
        choices=["wrk", "httpx"],
        default="wrk" if wrk.available() else "httpx",
        help="load generator: wrk (C, cheap; the default when installed) or httpx clients in this process",
    )
    parser.add_argument("--users", type=int, default=1000, help="how many random active users to ask for")
    parser.add_argument("--no-cache", action="store_true", help="turn the server's response cache off")
    parser.add_argument(
        "--reuseport",
        action="store_true",
        help="serve with `troika serve` (a SO_REUSEPORT socket per worker)",
    )
    parser.add_argument(
        "--roles",
        default="viewer",
        help="the operator key's roles (comma-separated); with pii_reader, answers show phones unmasked, "
        "so every one is audited and none is cached",
    )
    args = parser.parse_args()
    if not (1 <= args.concurrency <= 1024 and 0 < args.seconds <= 600 and 0 <= args.warmup <= 60):
        parser.error("--concurrency 1..1024, --seconds 0..600, --warmup 0..60")
    if not 1 <= args.workers <= 16:
        parser.error("--workers 1..16")
    query = QUERIES[args.query]
    settings = bench_settings(args.database_url)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    if args.no_cache:
        os.environ["TROIKA_RESPONSE_CACHE_BYTES"] = "0"
    roles = frozenset(Role(r) for r in args.roles.split(","))
    key, ids = asyncio.run(prepare(settings, args.users, roles))
    statements, answer = asyncio.run(count_statements(settings, key, query, ids[0]))
    print(f"query: {args.query}; statements per request: {len(statements)}")
    for s in statements:
        print(f"    {s[:150]}")
    print(f"sample answer ({len(answer)} bytes): {answer[:300]}")
    log_path = settings.var_dir / f"server-{args.port}.log"
    base = f"http://{harness.HOST}:{args.port}"
    headers = {"Authorization": f"Bearer {key}"}
    step = make_step(query, ids)
    proc = harness.start_server(
        settings, args.port, args.workers, log_path, access_log=args.access_log, reuseport=args.reuseport
    )
    pg = not settings.is_sqlite

    def drive(seconds: float) -> harness.Run | wrk.WrkRun:
        if args.driver == "wrk":
            return wrk.run(
                base,
                query=query,
                key=key,
                ids=ids,
                connections=args.concurrency,
                seconds=seconds,
                script_dir=settings.var_dir,
            )
        return asyncio.run(harness.load(base, headers, step, args.concurrency, seconds))

    try:
        asyncio.run(harness.wait_healthy(proc, base))
        if args.warmup:
            drive(args.warmup)
        run, cpu = harness.measure_cpu(proc.pid, lambda: drive(args.seconds), postgres=pg)
    finally:
        harness.stop_server(proc)
    access = "on" if args.access_log else "off"
    cache = "off" if args.no_cache else "on"
    print(
        f"server: uvicorn, {args.workers} worker(s), access log {access}, response cache {cache}, "
        f"log {log_path}; driver {args.driver}, {args.concurrency} connections, {len(ids)} users"
    )
    if isinstance(run, wrk.WrkRun):
        report_wrk(run, cpu, pg=pg)
        return
    if not run.latencies:
        raise SystemExit("no request completed")
    harness.report(run, cpu, unit="request", per=len(run.latencies), pg=pg)


def report_wrk(run: wrk.WrkRun, cpu: harness.Cpu, *, pg: bool) -> None:
    """The same lines as harness.report, from wrk's summary."""
    n = max(run.requests, 1)
    print(f"requests: {run.requests} in {run.seconds:.1f}s, errors: {run.bad + run.socket_errors}")
    if run.first:
        print(f"first error: {run.first}")
    print(f"req/s: {run.requests / run.seconds:.0f}; cache hits: {100 * run.hits / n:.1f}%")
    print(
        f"latency ms: p50 {run.p50:.1f}  p90 {run.p90:.1f}  p95 {run.p95:.1f}  p99 {run.p99:.1f}  "
        f"max {run.max:.1f}"
    )
    harness.report_cpu(cpu, unit="request", per=n, pg=pg, generator=("load generator (wrk)", run.own_cpu))


if __name__ == "__main__":
    main()
