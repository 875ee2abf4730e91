"""The portrait and the funnel on a generated dataset (`bench.generate --portrait`).

1. A 3-step funnel (official account FOLLOWED -> mini program PAID -> APP LOGGED_IN) over 90 days:
   wall time of the whole `Query.funnel` request, in-process, response cache off.
2. Server CPU per request of the unified query (bench/query.py) without and with
   `preferences(first: 10) traits journey`, alternated A B A B on the same random users, counted
   in this process like bench/cold_cpu.py (the database's own CPU is not counted), with compiled
   reads on (as deployed) and off.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

import orjson

from app.auth.principal import Role
from app.main import create_app
from bench.cold_cpu import call
from bench.generate import bench_settings
from bench.query import QUERIES, prepare

FUNNEL = """
query ($from: DateTime!, $to: DateTime!) {
  funnel(
    steps: [
      { channel: OFFICIAL_ACCOUNT, action: FOLLOWED }
      { channel: MINI_PROGRAM, action: PAID }
      { channel: APP, action: LOGGED_IN }
    ]
    from: $from, to: $to, withinDays: 30
  ) {
    steps { index persons conversionFromPrevious conversionFromFirst medianHoursFromPrevious }
    cohorts { weekStart persons }
  }
}
"""
# The generator's clock ends on 2026-11-01; its events cover the 90 days before.
WINDOW = {"from": "2026-08-03T00:00:00Z", "to": "2026-11-01T00:00:00Z"}
PORTRAIT = (
    " preferences(first: 10) { sku name views favorites cartAdds purchases score channels lastAt }"
    " traits { lifetimeValueCents paidOrders averageOrderCents firstOrderAt lastOrderAt"
    " ordersByChannel { channel count } lastSeenAt }"
    " journey { path channels { channel firstSeenAt lastSeenAt firstOrderAt } } } }"
)
WITH_PORTRAIT = QUERIES["unified"].removesuffix(" } }") + PORTRAIT


async def funnel(database_url: str, repeats: int) -> None:
    settings = bench_settings(database_url).model_copy(update={"response_cache_bytes": 0})
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    key, _ = await prepare(settings, 1, frozenset({Role.VIEWER}))
    app = create_app(settings)
    body = orjson.dumps({"query": FUNNEL, "variables": WINDOW})
    walls: list[float] = []
    try:
        for n in range(repeats + 1):
            started = time.perf_counter()
            answer = orjson.loads(await call(app, body, key))
            wall = time.perf_counter() - started
            if answer.get("errors"):
                raise SystemExit(str(answer["errors"]))
            if n == 0:
                print(
                    "steps:",
                    [(s["persons"], s["medianHoursFromPrevious"]) for s in answer["data"]["funnel"]["steps"]],
                )
                print(f"cohorts: {len(answer['data']['funnel']['cohorts'])} weeks; first run {wall:.3f} s")
                continue
            walls.append(wall)
    finally:
        await app.state.db.dispose()
    print(f"funnel: median {statistics.median(walls):.3f} s, range {min(walls):.3f}-{max(walls):.3f} s")


async def cpu(database_url: str, requests: int, rounds_: int, compiled: bool) -> None:
    print(f"compiled reads {'on' if compiled else 'off'}:")
    settings = bench_settings(database_url).model_copy(
        update={"response_cache_bytes": 0, "compiled_reads": compiled}
    )
    key, ids = await prepare(settings, 5000, frozenset({Role.VIEWER}))
    app = create_app(settings)
    queries = {"unified": QUERIES["unified"], "with portrait": WITH_PORTRAIT}
    per_request: dict[str, list[float]] = {name: [] for name in queries}
    rng = random.Random(1)
    try:
        for query in queries.values():  # warm-up
            for uid in ids[:50]:
                answer = orjson.loads(
                    await call(app, orjson.dumps({"query": query, "variables": {"id": str(uid)}}), key)
                )
                if answer.get("errors"):
                    raise SystemExit(str(answer["errors"]))
        for n in range(rounds_):
            users = [str(rng.choice(ids)) for _ in range(requests)]
            for name in list(queries) if n % 2 == 0 else list(reversed(queries)):
                bodies = [orjson.dumps({"query": queries[name], "variables": {"id": u}}) for u in users]
                started = time.process_time()
                for body in bodies:
                    await call(app, body, key)
                per_request[name].append((time.process_time() - started) * 1000 / requests)
            print(
                f"round {n + 1}: unified {per_request['unified'][-1]:.2f} ms, "
                f"with portrait {per_request['with portrait'][-1]:.2f} ms of server CPU per request"
            )
    finally:
        await app.state.db.dispose()
    base, more = (statistics.median(per_request[n]) for n in queries)
    print(
        f"unified: median {base:.2f} ms; with portrait: median {more:.2f} ms"
        f" ({(more / base - 1) * 100:+.1f}%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--repeats", type=int, default=5, help="funnel runs after a first one")
    parser.add_argument("--requests", type=int, default=200, help="requests per query per round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--skip-funnel", action="store_true")
    parser.add_argument("--skip-cpu", action="store_true")
    args = parser.parse_args()
    if not args.skip_funnel:
        asyncio.run(funnel(args.database_url, args.repeats))
    if not args.skip_cpu:
        # Compiled reads on is how the service runs; off shows what the portrait itself costs.
        for compiled in (True, False):
            asyncio.run(cpu(args.database_url, args.requests, args.rounds, compiled))


if __name__ == "__main__":
    main()
