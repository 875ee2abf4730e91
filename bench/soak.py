"""Soak: ingestion, unified reads, consent writes and subscriptions on PostgreSQL + Redis for N minutes.

One server (`--workers` uvicorn workers, Redis doorbell) on a dataset from `bench.generate`. For the
run's length: one sender ingests `--ingest-rate` APP records/s in batches, `--readers` clients read
the unified user `--read-rate` times a second in all, a writer sets a consent `--consent-rate` times
a second (as the user, for a subscribed user), and `--user-subscriptions` `userChanged` plus
`--changes-subscriptions` all-topics `changes` subscriptions are open, `--per-connection` to a
WebSocket. Every `--sample-seconds` it prints, per server process, RSS and open file descriptors;
the database's connections; p50/p99/max latency and errors of each kind of request; events received;
and the garbage-collector pauses the workers logged (TROIKA_GC_PAUSE_LOG_MS). At the end it checks
that every acknowledged record is stored once and that every subscription received every change of
the outbox it should have, once, in order; and reports each worker's RSS growth per 10 minutes
(least squares over the samples after the first `--warm-up-minutes`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from websockets.asyncio.client import ClientConnection, connect

from app.auth.principal import Role
from app.auth.tokens import mint_session
from app.db.channel_models import RawRecord
from app.db.engine import make_database
from app.db.models import Change
from app.domain import Channel
from app.settings import Settings
from bench import harness, ingest
from bench.generate import bench_settings
from bench.query import QUERIES, prepare, problem_of
from bench.sync import rss_kib

USER_CHANGED = "subscription ($id: ID!) { userChanged(userId: $id) { userId topic cursor } }"
CHANGES = "subscription ($after: String) { changes(after: $after) { userId topic cursor } }"
SET_CONSENT = """mutation ($input: ConsentInput!) { setConsent(input: $input) { id } }"""
PURPOSES = ("PUSH", "MARKETING")  # set per channel (the others hold in every channel)
GC_LINE = re.compile(r"gc pause (\d+) ms: generation (\d)")


@dataclass
class Window:
    """What one sampling interval saw."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    first_error: str = ""
    events: int = 0


@dataclass
class Soak:
    window: Window = field(default_factory=Window)
    all_latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: int = 0
    accepted: int = 0
    received: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))  # op -> cursors
    watched: dict[str, int | None] = field(default_factory=dict)  # op -> user id (None: all changes)
    stop: bool = False

    def timed(self, kind: str, seconds: float, problem: str) -> None:
        self.window.latencies[kind].append(seconds)
        self.all_latencies[kind].append(seconds)
        if problem:
            self.errors += 1
            self.window.errors[kind] += 1
            self.window.first_error = self.window.first_error or f"{kind}: {problem[:300]}"


async def subscribe_all(
    base: str, key: str, ops: list[tuple[str, dict[str, Any]]], soak: Soak, per: int
) -> list[ClientConnection]:
    """Open the subscriptions, `per` to a connection; a reader per connection records each cursor."""
    sockets = []
    for start in range(0, len(ops), per):
        ws = await connect(f"ws://{base}/graphql", subprotocols=["graphql-transport-ws"], max_queue=None)  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        for n, (query, variables) in enumerate(ops[start : start + per], start):
            payload = {"query": query, "variables": variables}
            await ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": payload}))
        asyncio.get_running_loop().create_task(read(ws, soak))
        sockets.append(ws)
    return sockets


async def read(ws: ClientConnection, soak: Soak) -> None:
    async for raw in ws:
        message = json.loads(raw)
        kind = message.get("type")
        if kind == "ping":
            await ws.send(json.dumps({"type": "pong"}))
        elif kind == "next" and not message["payload"].get("errors"):
            data = message["payload"]["data"]
            soak.received[message["id"]].append(int(next(iter(data.values()))["cursor"]))
            soak.window.events += 1
        else:
            soak.timed("subscription", 0.0, json.dumps(message))


async def every(rate: float, soak: Soak, act: Any) -> None:
    """Call `act(n)` `rate` times a second (closed loop: a slow call delays the next one)."""
    interval, n, due = 1.0 / rate, 0, time.perf_counter()
    while not soak.stop:
        await act(n)
        n += 1
        due += interval
        await asyncio.sleep(max(0.0, due - time.perf_counter()))


async def load(
    base: str,
    keys: dict[str, str],
    users: list[int],
    subscribed: list[int],
    pool: list[str],
    settings: Settings,
    args: argparse.Namespace,
    soak: Soak,
    tag: str,
) -> None:
    """The three writers and readers, until `soak.stop`."""
    http = httpx.AsyncClient(base_url=f"http://{base}", timeout=60.0)
    rng = random.Random(1)
    tally = ingest.Tally()
    send = ingest.make_step(tag, pool, args.batch, tally)
    secret = settings.secret("token_secret")
    tokens = {u: mint_session(u, secret=secret, ttl_seconds=86_400)[0] for u in subscribed}

    async def ingest_batch(n: int) -> None:
        t0 = time.perf_counter()
        try:
            problem = await send(http_ingest, 0, n)
        except httpx.HTTPError as exc:
            problem = repr(exc)
        soak.accepted = tally.accepted
        soak.timed("ingest", time.perf_counter() - t0, problem)

    async def unified_read(_n: int) -> None:
        body = {"query": QUERIES["unified"], "variables": {"id": str(rng.choice(users))}}
        await request("read", body, keys["operator"])

    async def consent(n: int) -> None:
        user = rng.choice(subscribed)
        value = {
            "purpose": rng.choice(PURPOSES),
            "granted": n % 2 == 0,
            "sourceChannel": "APP",
            "channel": "APP",
        }
        await request("consent", {"query": SET_CONSENT, "variables": {"input": value}}, tokens[user])

    async def request(kind: str, body: dict[str, Any], token: str) -> None:
        t0 = time.perf_counter()
        try:
            resp = await http.post("/graphql", json=body, headers={"Authorization": f"Bearer {token}"})
            problem = problem_of(resp) if kind == "read" else answer_problem(resp)
        except httpx.HTTPError as exc:
            problem = repr(exc)
        soak.timed(kind, time.perf_counter() - t0, problem)

    http_ingest = httpx.AsyncClient(
        base_url=f"http://{base}", timeout=60.0, headers={"Authorization": f"Bearer {keys['service']}"}
    )
    async with http, http_ingest:
        loops = [
            every(args.ingest_rate / args.batch, soak, ingest_batch),
            every(args.consent_rate, soak, consent),
        ]
        loops += [every(args.read_rate / args.readers, soak, unified_read) for _ in range(args.readers)]
        await asyncio.gather(*loops)


def answer_problem(resp: httpx.Response) -> str:
    """What is wrong with a GraphQL answer ("" when HTTP 200 without errors)."""
    if resp.status_code != 200:
        return f"HTTP {resp.status_code}: {resp.text[:200]}"
    errors = resp.json().get("errors")
    return str(errors) if errors else ""


def pg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def sample(
    pg: asyncpg.Connection, pids: list[int], log_path: Path, offset: int, soak: Soak, elapsed: float
) -> tuple[dict[str, Any], int]:
    """One row of figures for the interval that just ended (and resets the interval)."""
    window, soak.window = soak.window, Window()
    connections = await pg.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    with log_path.open("rb") as log:
        log.seek(offset)
        new = log.read().decode(errors="replace")
    pauses = [(int(ms), int(g)) for ms, g in GC_LINE.findall(new)]
    row: dict[str, Any] = {
        "t": round(elapsed),
        "rss_mib": {pid: round(rss_kib(pid) / 1024, 1) for pid in pids},
        "fds": {pid: len(os.listdir(f"/proc/{pid}/fd")) for pid in pids},
        "pg_connections": connections,
        "events": window.events,
        "errors": dict(window.errors),
        "first_error": window.first_error,
        "gc_pauses_logged": len(pauses),
        "gc_longest_ms": max((ms for ms, _ in pauses), default=0),
    }
    for kind, values in window.latencies.items():
        lat = sorted(v * 1000 for v in values)
        row[kind] = {
            "n": len(lat),
            "p50": round(harness.percentile(lat, 50), 1),
            "p99": round(harness.percentile(lat, 99), 1),
            "max": round(lat[-1], 1),
        }
    return row, offset + len(new.encode())


def show(row: dict[str, Any]) -> None:
    rss = " ".join(f"{v:.0f}" for v in row["rss_mib"].values())
    fds = " ".join(str(v) for v in row["fds"].values())
    kinds = "  ".join(
        f"{k} {row[k]['n']} p50 {row[k]['p50']:.0f} p99 {row[k]['p99']:.0f} max {row[k]['max']:.0f}"
        for k in ("ingest", "read", "consent")
        if k in row
    )
    print(
        f"{row['t']:>5}s rss MiB [{rss}] fds [{fds}] pg {row['pg_connections']} events {row['events']} "
        f"errors {sum(row['errors'].values())} gc>= {row['gc_pauses_logged']} "
        f"(max {row['gc_longest_ms']} ms) | {kinds}",
        flush=True,
    )
    if row["first_error"]:
        print(f"      first error: {row['first_error']}", flush=True)


async def last_cursor(settings: Settings) -> int:
    db = make_database(settings)
    try:
        async with db.read_sessions() as session:
            return int((await session.execute(select(func.coalesce(func.max(Change.id), 0)))).scalar_one())
    finally:
        await db.dispose()


async def outbox(settings: Settings, after: int) -> list[tuple[int, int]]:
    """(cursor, user id) of every change after `after`."""
    db = make_database(settings)
    try:
        async with db.read_sessions() as session:
            rows = await session.execute(
                select(Change.id, Change.user_id).where(Change.id > after).order_by(Change.id)
            )
            return [(int(c), int(u)) for c, u in rows.all()]
    finally:
        await db.dispose()


async def stored(settings: Settings, tag: str) -> tuple[int, int]:
    """Raw records of this run: rows, distinct source ids."""
    db = make_database(settings)
    try:
        async with db.store_for(Channel.APP).engines.read_sessions() as session:
            stmt = select(func.count(), func.count(RawRecord.source_id.distinct())).where(
                RawRecord.source_id.like(f"{tag}-%")
            )
            rows, distinct = (await session.execute(stmt)).one()
            return int(rows), int(distinct)
    finally:
        await db.dispose()


def check_delivery(soak: Soak, changes: list[tuple[int, int]], start: int) -> tuple[int, int, int]:
    """(subscriptions complete, events missing, events duplicated or out of order)."""
    complete = missing = disorder = 0
    for op, user in soak.watched.items():
        expected = [c for c, u in changes if user is None or u == user]
        got = [c for c in soak.received[op] if c > start]
        missing += len(set(expected) - set(got))
        disorder += len(got) - len(set(got)) + sum(a >= b for a, b in zip(got, got[1:], strict=False))
        complete += set(expected) <= set(got)
    return complete, missing, disorder


def growth_per_10_min(rows: list[dict[str, Any]], pid: int, after: float) -> float:
    """Least-squares slope of a process's RSS (MiB) over the samples after `after` s, per 600 s."""
    points = [(r["t"], r["rss_mib"][pid]) for r in rows if r["t"] >= after and pid in r["rss_mib"]]
    if len(points) < 2:
        return float("nan")
    mt = sum(t for t, _ in points) / len(points)
    mr = sum(m for _, m in points) / len(points)
    slope = sum((t - mt) * (m - mr) for t, m in points) / sum((t - mt) ** 2 for t, _ in points)
    return float(slope * 600)


async def drive(
    base: str, settings: Settings, args: argparse.Namespace, proc_pid: int, log_path: Path
) -> None:
    key, users = await prepare(
        settings, max(args.user_subscriptions, 1000), frozenset({Role.VIEWER, Role.PII_READER})
    )
    tag = secrets.token_hex(4)
    service, pool = await ingest.prepare(settings, args.pool, tag)
    subscribed = users[: args.user_subscriptions]
    soak = Soak()
    start = await last_cursor(settings)
    ops: list[tuple[str, dict[str, Any]]] = [(CHANGES, {"after": str(start)})] * args.changes_subscriptions
    ops += [(USER_CHANGED, {"id": str(u)}) for u in subscribed]
    for n, (_query, variables) in enumerate(ops):
        soak.watched[str(n)] = int(variables["id"]) if "id" in variables else None
    sockets = await subscribe_all(base, key, ops, soak, args.per_connection)
    await asyncio.sleep(args.settle_seconds)  # no change is written meanwhile: every listener registers
    pids = harness.server_pids(proc_pid)
    pg = await asyncpg.connect(pg_dsn(settings.database_url))
    rows: list[dict[str, Any]] = []
    began = time.perf_counter()
    writers = asyncio.create_task(
        load(base, {"operator": key, "service": service}, users, subscribed, pool, settings, args, soak, tag)
    )
    offset = await asyncio.to_thread(os.path.getsize, log_path)
    deadline = began + args.minutes * 60
    while time.perf_counter() < deadline:
        await asyncio.sleep(min(args.sample_seconds, max(0.0, deadline - time.perf_counter())))
        row, offset = await sample(pg, pids, log_path, offset, soak, time.perf_counter() - began)
        rows.append(row)
        show(row)
    soak.stop = True
    await writers
    changes = await outbox(settings, start)
    end = changes[-1][0] if changes else start
    for _ in range(240):  # let the last changes reach every subscriber
        if all(soak.received[str(n)][-1:] == [end] for n in range(args.changes_subscriptions)):
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)
    for ws in sockets:
        await ws.close()
    await pg.close()
    complete, missing, disorder = check_delivery(soak, changes, start)
    rows_stored, distinct = await stored(settings, tag)
    summarize(rows, pids, args, soak, changes, (complete, missing, disorder), (rows_stored, distinct))


def summarize(
    rows: list[dict[str, Any]],
    pids: list[int],
    args: argparse.Namespace,
    soak: Soak,
    changes: list[tuple[int, int]],
    delivery: tuple[int, int, int],
    records: tuple[int, int],
) -> None:
    complete, missing, disorder = delivery
    warm = args.warm_up_minutes * 60
    print(
        f"\n{args.workers} workers, {args.minutes:g} min; ingest {args.ingest_rate:g} records/s "
        f"in batches of {args.batch}, {args.readers} readers at {args.read_rate:g}/s, "
        f"consents {args.consent_rate:g}/s, "
        f"{args.user_subscriptions} userChanged + {args.changes_subscriptions} changes subscriptions"
    )
    for pid in pids:
        first = next((r["rss_mib"][pid] for r in rows if r["t"] >= warm), float("nan"))
        role = "parent" if pid == pids[0] else "worker" if rows[0]["rss_mib"][pid] > 50 else "helper"
        print(
            f"{role} {pid}: RSS {rows[0]['rss_mib'][pid]} → {first} (after warm-up) "
            f"→ {rows[-1]['rss_mib'][pid]} MiB, "
            f"{growth_per_10_min(rows, pid, warm):+.1f} MiB per 10 min after warm-up; "
            f"fds {rows[0]['fds'][pid]} → {rows[-1]['fds'][pid]}"
        )
    connections = [r["pg_connections"] for r in rows]
    print(f"PostgreSQL connections: {min(connections)}–{max(connections)}")
    for kind in ("ingest", "read", "consent"):
        lat = sorted(v * 1000 for v in soak.all_latencies[kind])
        if lat:
            worst = max((r[kind]["p99"] for r in rows if kind in r), default=0)
            print(
                f"{kind}: {len(lat)} requests, p50 {harness.percentile(lat, 50):.0f} p99 "
                f"{harness.percentile(lat, 99):.0f} max {lat[-1]:.0f} ms; worst 30 s p99 {worst:.0f} ms"
            )
    print(f"errors: {soak.errors}")
    print(
        f"gc pauses logged (>= {args.gc_pause_ms} ms): {sum(r['gc_pauses_logged'] for r in rows)}, "
        f"longest {max(r['gc_longest_ms'] for r in rows)} ms"
    )
    stored_rows, distinct = records
    print(
        f"records: {soak.accepted} acknowledged, {stored_rows} stored, {distinct} distinct: "
        + ("OK" if soak.accepted == stored_rows == distinct else "MISMATCH")
    )
    events = sum(len(v) for v in soak.received.values())
    print(
        f"subscriptions: {complete} of {len(soak.watched)} received every change; {events} events, "
        f"{missing} missing, {disorder} duplicated or out of order ({len(changes)} changes in the outbox)"
    )
    if args.out:
        Path(args.out).write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True, help="PostgreSQL, with a bench.generate dataset")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--warm-up-minutes", type=float, default=5.0)
    parser.add_argument("--ingest-rate", type=float, default=250.0, help="records per second")
    parser.add_argument("--batch", type=int, default=50, help="records per ingest request")
    parser.add_argument("--pool", type=int, default=20_000, help="distinct APP_USER_ID values ingested for")
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--read-rate", type=float, default=40.0, help="unified reads per second, all readers")
    parser.add_argument("--consent-rate", type=float, default=3.0)
    parser.add_argument("--user-subscriptions", type=int, default=180)
    parser.add_argument("--changes-subscriptions", type=int, default=20)
    parser.add_argument("--per-connection", type=int, default=10)
    parser.add_argument("--settle-seconds", type=float, default=10.0)
    parser.add_argument("--sample-seconds", type=float, default=30.0)
    parser.add_argument(
        "--gc-pause-ms", type=float, default=100.0, help="TROIKA_GC_PAUSE_LOG_MS of the workers"
    )
    parser.add_argument("--port", type=int, default=8771)
    parser.add_argument("--out", default="", help="write the samples here (JSON lines)")
    args = parser.parse_args()
    settings = bench_settings(args.database_url)
    if settings.is_sqlite:
        parser.error("the soak runs on PostgreSQL")
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        TROIKA_REDIS_URL=args.redis_url,
        TROIKA_GC_PAUSE_LOG_MS=str(args.gc_pause_ms),
        TROIKA_SUBSCRIPTIONS_PER_CONNECTION=str(args.per_connection),
    )
    log_path = settings.var_dir / f"soak-{args.port}.log"
    proc = harness.start_server(settings, args.port, args.workers, log_path)
    base = f"{harness.HOST}:{args.port}"
    try:
        asyncio.run(harness.wait_healthy(proc, f"http://{base}"))
        asyncio.run(drive(base, settings, args, proc.pid, log_path))
    finally:
        harness.stop_server(proc)
    print(f"server log: {log_path}")


if __name__ == "__main__":
    main()
