"""Profile the unified-user query in one process: cProfile over N requests through httpx.ASGITransport.

Prints the top functions by cumulative and by own time, and own time summed by library, so one
can see where a request's CPU goes (graphql-core, strawberry, SQLAlchemy, asyncpg, the HTTP stack,
our auth, loaders and resolvers). cProfile adds overhead per Python call, so pure-Python layers
look somewhat heavier than they are; compare the shares, not the absolute times.

The default timer is process CPU time: with the wall clock, time spent waiting for PostgreSQL
lands on whatever frame cProfile believes is running, and SQLAlchemy's greenlet switches make
that a SQLAlchemy frame. cProfile counts each resumption of a coroutine as a call, so `ncalls`
of async functions is several times the number of requests.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from app.main import create_app
from bench.generate import bench_settings
from bench.query import QUERIES, prepare, problem_of

# Own time is attributed by the first matching fragment of the function's file (or built-in name).
CATEGORIES = (
    ("graphql-core", ("/graphql/",)),
    ("strawberry", ("/strawberry/",)),
    ("SQLAlchemy", ("/sqlalchemy/",)),
    ("asyncpg", ("/asyncpg/", "asyncpg.")),
    ("aiosqlite/sqlite3", ("/aiosqlite/", "sqlite3")),
    ("HTTP stack (starlette, fastapi, anyio)", ("/starlette/", "/fastapi/", "/anyio/")),
    ("bench client (httpx, httpcore)", ("/httpx/", "/httpcore/", "/h11/")),
    ("JSON", ("/json/", "_json", "orjson")),
    ("aiodataloader", ("/aiodataloader",)),
    ("app.auth", ("/app/auth/",)),
    ("loaders/", ("/loaders/",)),
    ("resolvers/", ("/resolvers/",)),
    ("graphql_schema/", ("/graphql_schema/",)),
    ("app (other)", ("/app/",)),
    ("asyncio", ("/asyncio/", "_asyncio")),
    ("pydantic", ("/pydantic",)),
    ("typing/dataclasses/enum", ("/typing.py", "/dataclasses.py", "/enum.py")),
)


def category(func: tuple[str, int, str]) -> str:
    """The library a profiled function belongs to."""
    filename, _line, name = func
    where = f"{filename} {name}" if filename == "~" else filename
    for label, fragments in CATEGORIES:
        if any(f in where for f in fragments):
            return label
    return "built-ins and other" if filename == "~" else "other Python"


async def drive(app: Any, key: str, ids: list[int], query: str, requests: int) -> int:
    """Send `requests` queries one after another in-process; returns how many failed."""
    rng = random.Random(1)
    failed = 0
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench.local", headers=headers
    ) as client:
        for _ in range(requests):
            body = {"query": query, "variables": {"id": str(rng.choice(ids))}}
            if problem_of(await client.post("/graphql", json=body)):
                failed += 1
    return failed


async def profile(
    database_url: str, query: str, requests: int, warmup: int, cpu: bool
) -> tuple[cProfile.Profile, float, int]:
    """Warm the app up, then profile `requests` requests; returns the profile, wall time and failures."""
    settings = bench_settings(database_url)
    key, ids = await prepare(settings)
    # The response cache is off: this profiles the work of a miss (a hit is one version check).
    app = create_app(settings.model_copy(update={"response_cache_bytes": 0}))
    try:
        await drive(app, key, ids, query, warmup)
        prof = cProfile.Profile(time.process_time) if cpu else cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        failed = await drive(app, key, ids, query, requests)
        prof.disable()
        return prof, time.perf_counter() - t0, failed
    finally:
        await app.state.db.dispose()


def summarize(stats: pstats.Stats, requests: int, top: int) -> None:
    """Print own time by library, then the top functions by cumulative and own time."""
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    by_cat: dict[str, float] = {}
    for func, (_cc, _nc, tt, _ct, _callers) in raw.items():
        by_cat[category(func)] = by_cat.get(category(func), 0.0) + tt
    print(f"\nown time by library (profiled total {total:.2f}s, {1000 * total / requests:.2f} ms/request):")
    for label, tt in sorted(by_cat.items(), key=lambda kv: -kv[1]):
        print(f"  {100 * tt / total:5.1f}%  {1000 * tt / requests:6.2f} ms/req  {label}")
    for order in ("cumulative", "tottime"):
        print(f"\ntop {top} by {order}:")
        stats.sort_stats(order).print_stats(top)


def main() -> None:
    """Parse arguments, profile, print the summary; the raw profile goes to a temp file if asked."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--query", choices=sorted(QUERIES), default="unified")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--timer", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--save", action="store_true", help="also write the .prof file to the temp dir")
    args = parser.parse_args()
    if not (1 <= args.requests <= 100_000 and 0 <= args.warmup <= 10_000 and 1 <= args.top <= 200):
        parser.error("--requests 1..100000, --warmup 0..10000, --top 1..200")
    work = profile(args.database_url, QUERIES[args.query], args.requests, args.warmup, args.timer == "cpu")
    prof, wall, failed = asyncio.run(work)
    each = 1000 * wall / args.requests
    print(f"{args.requests} requests in {wall:.1f}s wall under cProfile ({each:.2f} ms each)")
    print(f"timer: {args.timer}")
    print(f"failed: {failed}")
    if args.save:
        path = Path(tempfile.gettempdir()) / "troika-bench" / "query.prof"
        path.parent.mkdir(parents=True, exist_ok=True)
        prof.dump_stats(path)
        print(f"raw profile: {path}")
    summarize(pstats.Stats(prof), args.requests, args.top)


if __name__ == "__main__":
    main()
