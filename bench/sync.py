"""End-to-end sync latency: a mutation over HTTP to the `userChanged` subscriber's receipt.

Opens N subscriptions (`userChanged` for N distinct active users, spread over WebSocket
connections of `--per-connection` each) on one server, then links a new identity to a random
subscribed user `--rate` times a second for `--seconds`, and times each change from the moment
the mutation was sent, and from the moment its answer came back (the commit is in between), to
the moment the subscriber received it. Reports p50/p99 of both, the server's memory per
subscription (RSS growth while subscribing, divided by N) and its CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection, connect

from app.auth.principal import Role
from app.settings import Settings
from bench import harness
from bench.generate import bench_settings
from bench.query import prepare

SUBSCRIBE = "subscription ($id: ID!) { userChanged(userId: $id) { userId topic cursor } }"
# A new provider each time: a user holds one identity per (kind, namespace).
LINK = """mutation ($u: ID!, $ns: String!, $v: String!) {
  linkIdentity(userId: $u, identity: {kind: EXTERNAL, namespace: $ns, value: $v}) { user { id } }
}"""


@dataclass
class Timing:
    sent: float
    answered: float = 0.0
    received: float = 0.0


@dataclass
class Run:
    timings: dict[str, Timing] = field(default_factory=dict)  # "user:<id>" in flight, "done:<n>" after
    unexpected: int = 0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def open_connection(base: str, key: str, user_ids: list[int], run: Run) -> ClientConnection:
    """One connection holding a subscription per user; a reader task timestamps every event."""
    ws = await connect(f"ws://{base}/graphql", subprotocols=["graphql-transport-ws"], max_queue=None)  # type: ignore[list-item]
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    for n, user_id in enumerate(user_ids):
        payload = {"query": SUBSCRIBE, "variables": {"id": str(user_id)}}
        await ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": payload}))

    async def read() -> None:
        async for raw in ws:
            now = time.perf_counter()
            message = json.loads(raw)
            if message.get("type") == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif message.get("type") == "next" and not message["payload"].get("errors"):
                value = message["payload"]["data"]["userChanged"]
                pending = run.timings.get(f"user:{value['userId']}")
                if pending is not None and not pending.received:
                    pending.received = now
            else:
                run.unexpected += 1

    asyncio.get_running_loop().create_task(read())
    return ws


async def settle(pid: int, *, within: float = 300.0) -> None:
    """Wait until the server uses under 5% of a core for half a second."""
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        before = harness.cpu_seconds([pid]).get(pid, 0.0)
        await asyncio.sleep(0.5)
        if harness.cpu_seconds([pid]).get(pid, 0.0) - before < 0.025:
            return
    raise SystemExit("the server never went idle after subscribing")


async def drive(
    base: str, key: str, user_ids: list[int], args: argparse.Namespace, pid: int
) -> tuple[Run, int]:
    run = Run()
    before = rss_kib(pid)
    per = args.per_connection
    connections = [
        await open_connection(base, key, user_ids[i : i + per], run) for i in range(0, len(user_ids), per)
    ]
    started = time.perf_counter()
    await settle(pid)  # every subscription has registered once the server goes idle
    print(f"subscribed in {time.perf_counter() - started:.1f} s")
    grown = rss_kib(pid) - before
    rng = random.Random(7)
    async with httpx.AsyncClient(
        base_url=f"http://{base}", headers={"Authorization": f"Bearer {key}"}
    ) as client:
        deadline = time.perf_counter() + args.seconds
        interval = 1.0 / args.rate
        busy: set[int] = set()
        tasks = []

        async def change(n: int) -> None:
            user_id = rng.choice([u for u in user_ids if u not in busy])
            busy.add(user_id)  # one change in flight per user, so receipts match their change
            timing = Timing(time.perf_counter())
            run.timings[f"user:{user_id}"] = timing
            resp = await client.post(
                "/graphql",
                json={
                    "query": LINK,
                    "variables": {"u": str(user_id), "ns": f"bench{n}", "v": uuid.uuid4().hex},
                },
            )
            timing.answered = time.perf_counter()
            if resp.status_code != 200 or "errors" in resp.json():
                raise SystemExit(f"the mutation failed: {resp.text[:300]}")
            for _ in range(200):
                if timing.received:
                    break
                await asyncio.sleep(0.01)
            run.timings[f"done:{n}"] = run.timings.pop(f"user:{user_id}")
            busy.discard(user_id)

        n = 0
        while time.perf_counter() < deadline:
            tasks.append(asyncio.create_task(change(n)))
            n += 1
            await asyncio.sleep(interval)
        await asyncio.gather(*tasks)
    for ws in connections:
        await ws.close()
    return run, grown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", default=None, help="configure the server with Redis")
    parser.add_argument("--subscriptions", type=int, default=1000)
    parser.add_argument("--per-connection", type=int, default=100)
    parser.add_argument("--rate", type=float, default=50.0, help="changes per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    settings: Settings = bench_settings(args.database_url)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    key, user_ids = asyncio.run(prepare(settings, args.subscriptions, frozenset({Role.OPERATOR})))
    os.environ["TROIKA_SUBSCRIPTIONS_PER_CONNECTION"] = str(args.per_connection)
    if args.redis_url:
        os.environ["TROIKA_REDIS_URL"] = args.redis_url
    log_path = settings.var_dir / f"server-{args.port}.log"
    proc = harness.start_server(settings, args.port, 1, log_path)
    base = f"{harness.HOST}:{args.port}"
    try:
        asyncio.run(harness.wait_healthy(proc, f"http://{base}"))
        pids = harness.server_pids(proc.pid)
        app_pid = max(pids, key=lambda p: rss_kib(p))
        (run, grown), cpu = harness.measure_cpu(
            proc.pid, lambda: asyncio.run(drive(base, key, user_ids, args, app_pid)), postgres=True
        )
    finally:
        harness.stop_server(proc)
    done = [t for k, t in run.timings.items() if k.startswith("done:")]
    got = [t for t in done if t.received]
    from_sent = sorted((t.received - t.sent) * 1000 for t in got)
    from_answer = sorted((t.received - t.answered) * 1000 for t in got)
    mutation = sorted((t.answered - t.sent) * 1000 for t in done)
    pct = harness.percentile
    print(f"subscriptions: {len(user_ids)} on {-(-len(user_ids) // args.per_connection)} connections")
    each = grown * 1024 / len(user_ids)
    print(f"server memory: +{grown / 1024:.1f} MiB while subscribing, {each:.0f} bytes each")
    print(f"changes: {len(done)} sent at {args.rate:.0f}/s, {len(got)} received, {len(done) - len(got)} lost")
    print(f"mutation answered in ms: p50 {pct(mutation, 50):.1f}  p99 {pct(mutation, 99):.1f}")
    print(
        f"received after send, ms: p50 {pct(from_sent, 50):.1f}  p99 {pct(from_sent, 99):.1f}  "
        f"max {from_sent[-1]:.1f}"
    )
    print(f"received after answer, ms: p50 {pct(from_answer, 50):.1f}  p99 {pct(from_answer, 99):.1f}")
    server = sum(cpu.server.values())
    print(
        f"CPU s: server {server:.1f}, postgres {cpu.postgres:.1f}, bench client {cpu.own:.1f} "
        f"(in {args.seconds:.0f} s)"
    )
    print(f"unexpected messages: {run.unexpected}")


if __name__ == "__main__":
    main()
