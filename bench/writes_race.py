"""Concurrent setConsent in process: the mix's write, by the mini program's key, from N clients at once.

The app runs in this process (requests go straight to its ASGI callable, bench/cold_cpu.py) on a
fresh PostgreSQL database; `--clients` coroutines each send the race's mutation (bench/race.py's
mix) for users holding a mini-program openid, back to back, for `--seconds`. Reported: writes per
second, latency p50 and p99 (queueing in this one event loop included: the server's as the race
sees it), and CPU per write, the server's and PostgreSQL's (its backends' /proc schedstat). It
uses only what bench/writes.py and bench/cold_cpu.py had before the one-statement write, so
main's tree runs it too: `cd /work/main && PYTHONPATH=. .venv/bin/python
/path/to/bench/writes_race.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any

from app.auth.keys import create_key
from app.auth.principal import PrincipalKind, Role
from app.domain import Channel
from bench.cold_cpu import backends_cpu
from bench.writes import LINK, ask, fresh_app

MIX_WRITE = (
    "mutation ($id: ID!, $g: Boolean!) { setConsent(input: {userId: $id, purpose: PUSH,"
    " channel: MINI_PROGRAM, granted: $g, sourceChannel: MINI_PROGRAM}) { id } }"
)


async def run(database_url: str, clients: int, seconds: float, users: int, prefix: str) -> None:
    async with fresh_app(database_url, prefix) as (app, url):
        await race(app, url, clients, seconds, users)


async def keys_and_users(app: Any, users: int) -> tuple[str, str, list[str]]:
    """An operator's key, the mini program's service key, and `users` users with its openid."""
    async with app.state.db.write_sessions() as session, session.begin():
        kind, roles = PrincipalKind.OPERATOR, frozenset({Role.OPERATOR})
        operator = (await create_key(session, kind=kind, roles=roles)).raw
        mini = (await create_key(session, kind=PrincipalKind.SERVICE, channel=Channel.MINI_PROGRAM)).raw
    appid = app.state.settings.mini_program_appid
    ids = []
    for n in range(users):
        identity = {"kind": "OPENID", "namespace": appid, "value": f"o-race-{n}"}
        ids.append(
            (await ask(app, operator, LINK, {"identity": identity}))["data"]["linkIdentity"]["user"]["id"]
        )
    return operator, mini, ids


async def race(app: Any, url: str, clients: int, seconds: float, users: int) -> None:
    _operator, mini, ids = await keys_and_users(app, users)
    for n in range(50):  # warm-up: plans, pools, the key
        await ask(app, mini, MIX_WRITE, {"id": ids[n % users], "g": n % 2 == 0})
    latencies: list[float] = []
    serial = iter(range(10**9))
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < deadline:
            n = next(serial)
            started = time.perf_counter()
            await ask(app, mini, MIX_WRITE, {"id": ids[n * 7919 % users], "g": n % 2 == 0})
            latencies.append(time.perf_counter() - started)

    pg, cpu, wall = await backends_cpu(url), time.process_time(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    pg_after = await backends_cpu(url)  # the pools' backends (none closes during the run)
    pg_ms = (
        f"{(pg_after - pg) * 1000 / len(latencies):.2f}" if pg is not None and pg_after is not None else "?"
    )
    ms = sorted(x * 1000 for x in latencies)
    print(
        f"{clients} clients, {len(ms)} setConsent in {wall:.1f} s: {len(ms) / wall:.0f} writes/s,"
        f" p50 {statistics.median(ms):.1f} ms, p99 {ms[int(len(ms) * 0.99)]:.1f} ms,"
        f" max {ms[-1]:.1f} ms; CPU per write: server {cpu * 1000 / len(ms):.2f} ms, PostgreSQL {pg_ms} ms;"
        f" load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--database-url", required=True, help="a PostgreSQL server; the bench makes its own database"
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--prefix", default="writes_race", help="the made database's name starts so")
    args = parser.parse_args()
    asyncio.run(run(args.database_url, args.clients, args.seconds, args.users, args.prefix))


if __name__ == "__main__":
    main()
