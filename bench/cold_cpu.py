"""Server CPU of a cold read (response cache off), compiled reads on and off, alternated A B A B.

Three modes: `compiled` (a cleared query answered by the HTTP layer's fast lane, app/http/lane.py),
`full path` (compiled too, but every request through strawberry's operation and its extensions)
and `resolvers` (compiled reads off).

The app runs in this process and requests go straight to its ASGI callable (no sockets, no
client library): the CPU counted is the server's own work for a request (HTTP app, GraphQL,
database client). Each round asks for `--requests` random users, the same ids for both modes.
On a local PostgreSQL the CPU of the backends serving the benchmark's database is reported too
(/proc/PID/schedstat of every backend connected to it; Linux only): give the benchmark a
database of its own, or other clients' work is counted.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from app.auth.principal import Role
from app.http.lane import STATS as LANE
from app.main import create_app
from bench.generate import bench_settings
from bench.query import QUERIES, prepare
from graphql_schema.compiled.hook import STATS


async def call(app: Any, body: bytes, key: str, head: list[Any] | None = None) -> bytes:
    """One POST /graphql through the ASGI callable; the response body (its status and headers
    appended to `head` when given)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench.local"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("bench.local", 80),
    }
    sent = False
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
        elif head is not None and message["type"] == "http.response.start":
            head.append((message["status"], list(message["headers"])))

    await app(scope, receive, send)
    return b"".join(chunks)


async def backends_cpu(database_url: str) -> float | None:
    """CPU seconds so far of the PostgreSQL backends connected to this database (not this one)."""
    if not database_url.startswith("postgresql"):
        return None
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        pids = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return _schedstat([row["pid"] for row in pids])


def _schedstat(pids: list[int]) -> float | None:
    total = 0.0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
        except OSError:
            return None  # not a local cluster
    return total


async def rounds(database_url: str, query_name: str, requests: int, rounds_: int, roles: str) -> None:
    settings = bench_settings(database_url).model_copy(update={"response_cache_bytes": 0})
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    key, ids = await prepare(settings, 5000, frozenset(Role(r) for r in roles.split(",")))
    query = QUERIES[query_name]
    full_path = {"compiled_reads": True, "graphql_fast_lane": False}
    apps = {
        "compiled": create_app(settings.model_copy(update={"compiled_reads": True})),
        "full path": create_app(settings.model_copy(update=full_path)),
        "resolvers": create_app(settings.model_copy(update={"compiled_reads": False})),
    }
    per_request: dict[str, list[float]] = {name: [] for name in apps}
    pg_per_request: dict[str, list[float]] = {name: [] for name in apps}
    rng = random.Random(1)
    try:
        for app in apps.values():  # warm-up: imports, pools, plans, the key
            for uid in ids[:50]:
                await call(app, orjson.dumps({"query": query, "variables": {"id": str(uid)}}), key)
        for n in range(rounds_):
            batch = [
                orjson.dumps({"query": query, "variables": {"id": str(rng.choice(ids))}})
                for _ in range(requests)
            ]
            answers: dict[str, list[bytes]] = {}
            for name in list(apps) if n % 2 == 0 else list(reversed(apps)):  # A B C, C B A
                pg_before = await backends_cpu(database_url)
                started = time.process_time()
                answers[name] = [await call(apps[name], body, key) for body in batch]
                per_request[name].append((time.process_time() - started) * 1000 / requests)
                pg_after = await backends_cpu(database_url)
                if pg_before is not None and pg_after is not None:
                    pg_per_request[name].append((pg_after - pg_before) * 1000 / requests)
            same = sum(
                a == b == c
                for a, b, c in zip(
                    answers["compiled"], answers["full path"], answers["resolvers"], strict=True
                )
            )
            print(
                f"round {n + 1}: compiled {per_request['compiled'][-1]:.2f} ms, "
                f"full path {per_request['full path'][-1]:.2f} ms, "
                f"resolvers {per_request['resolvers'][-1]:.2f} ms of server CPU per request; "
                f"identical answers {same}/{requests}"
            )
    finally:
        for app in apps.values():
            await app.state.db.dispose()
    for name, values in per_request.items():
        print(f"{name}: median {statistics.median(values):.2f} ms, range {min(values):.2f}-{max(values):.2f}")
    for name, values in pg_per_request.items():
        if values:
            print(
                f"{name}, PostgreSQL backends: median {statistics.median(values):.2f} ms, "
                f"range {min(values):.2f}-{max(values):.2f}"
            )
    print(f"answered: {dict(STATS)}; fast lane: {dict(LANE)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--query", choices=sorted(QUERIES), default="unified")
    parser.add_argument("--requests", type=int, default=300, help="requests per mode per round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--roles", default="viewer", help="the operator key's roles (comma-separated)")
    args = parser.parse_args()
    asyncio.run(rounds(args.database_url, args.query, args.requests, args.rounds, args.roles))


if __name__ == "__main__":
    main()
